// Package compliance serves auditors and dispute teams: the timeline of a
// mandate and its delegation tree in one answer, the signed evidence
// bundle of a charge (verifiable offline), the replay of recorded policy
// decisions against the policy version that made them, and the kept
// policy versions themselves.
//
// It reads the other domains through narrow interfaces and writes nothing
// but policy versions.
package compliance
