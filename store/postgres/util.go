package postgres

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

// checksum is the SHA-256 of a migration file, as schema_migrations records it.
func checksum(sql []byte) string {
	sum := sha256.Sum256(sql)
	return hex.EncodeToString(sum[:])
}

// nullTime converts an optional time for a nullable column.
func nullTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return *t
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}
