// Command mutants is the mutation suite for the guards: it applies each
// named breakage listed in mutants.txt, one at a time, to a copy of the
// tree and requires that the tests named for it fail. A mutant whose
// snippet is not found exactly once, that does not compile, or that no
// named test kills fails the run, and so does a named test that fails (or
// matches nothing) before any mutation.
//
//	go run ./tools/mutants [-list tools/mutants/mutants.txt] [-rev HEAD] [-only regexp]
//
// The copy is `git archive` of -rev (the committed tree), or the working
// tree's tracked and untracked files with -rev "" (for trying a mutant
// before committing). The tree itself is never written to.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

func main() {
	list := flag.String("list", "tools/mutants/mutants.txt", "the mutants")
	rev := flag.String("rev", "HEAD", `revision to copy ("" copies the working tree)`)
	only := flag.String("only", "", "run only the mutants whose name matches this regexp")
	keep := flag.Bool("keep", false, "keep the copy of the tree (its path is printed)")
	flag.Parse()
	if err := run(*list, *rev, *only, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "mutants:", err)
		os.Exit(1)
	}
}

func run(list, rev, only string, keep bool) error {
	raw, err := os.ReadFile(list)
	if err != nil {
		return err
	}
	ms, err := parse(string(raw))
	if err != nil {
		return fmt.Errorf("%s: %w", list, err)
	}
	if only != "" {
		re, err := regexp.Compile(only)
		if err != nil {
			return err
		}
		var keepMs []mutant
		for _, m := range ms {
			if re.MatchString(m.name) {
				keepMs = append(keepMs, m)
			}
		}
		ms = keepMs
	}
	if len(ms) == 0 {
		return errors.New("no mutants to run")
	}
	dir, err := os.MkdirTemp("", "perfectpay-mutants-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Println("copy of the tree:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	if err := copyTree(dir, rev); err != nil {
		return fmt.Errorf("copying the tree: %w", err)
	}

	// Every named test must pass, and run something, on the tree as it is.
	start := time.Now()
	baseline := map[string]bool{}
	var problems []string
	for _, m := range ms {
		for _, tc := range m.tests {
			if baseline[tc.String()] {
				continue
			}
			baseline[tc.String()] = true
			out, err := tc.exec(dir, true)
			switch {
			case err != nil:
				problems = append(problems, fmt.Sprintf("baseline: %s fails on the unmutated tree:\n%s", tc, tail(out)))
			case bytes.Contains(out, []byte("no tests to run")) || !bytes.Contains(out, []byte("--- PASS")):
				problems = append(problems, fmt.Sprintf("baseline: %s runs no test", tc))
			}
		}
	}
	fmt.Printf("baseline: %d test commands in %s\n", len(baseline), time.Since(start).Round(time.Second))
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}

	failed := 0
	for _, m := range ms {
		start := time.Now()
		verdict, detail := m.apply(dir)
		fmt.Printf("%-8s %-48s %6s  %s\n", verdict, m.name, time.Since(start).Round(time.Second), detail)
		if verdict != "killed" {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d mutants not killed", failed, len(ms))
	}
	fmt.Printf("all %d mutants killed\n", len(ms))
	return nil
}

// mutant is one named breakage and the tests that must catch it.
type mutant struct {
	name, file, find, replace string
	tests                     []testCmd
}

// testCmd is `go test -run Run Pkg`.
type testCmd struct{ pkg, run string }

func (tc testCmd) String() string { return fmt.Sprintf("go test -run '%s' %s", tc.run, tc.pkg) }

func (tc testCmd) exec(dir string, verbose bool) ([]byte, error) {
	args := []string{"test", "-count=1", "-timeout", "15m", "-run", tc.run}
	if verbose {
		args = append(args, "-v")
	}
	cmd := exec.Command("go", append(args, tc.pkg)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CI=1")
	return cmd.CombinedOutput()
}

// apply mutates the copy, runs the tests, restores the file, and says
// "killed", "SURVIVED", "NOTFOUND" or "BROKEN" (does not compile).
func (m mutant) apply(dir string) (string, string) {
	path := filepath.Join(dir, m.file)
	orig, err := os.ReadFile(path)
	if err != nil {
		return "NOTFOUND", err.Error()
	}
	switch n := strings.Count(string(orig), m.find); n {
	case 1:
	case 0:
		return "NOTFOUND", fmt.Sprintf("%s no longer holds %q", m.file, m.find)
	default:
		return "NOTFOUND", fmt.Sprintf("%s holds %q %d times", m.file, m.find, n)
	}
	mutated := strings.Replace(string(orig), m.find, m.replace, 1)
	if err := os.WriteFile(path, []byte(mutated), 0o644); err != nil {
		return "BROKEN", err.Error()
	}
	defer os.WriteFile(path, orig, 0o644) //nolint:errcheck // a scratch copy of the tree; a file left mutated fails the next mutant's baseline

	vet := exec.Command("go", "vet", "./"+filepath.Dir(m.file))
	vet.Dir = dir
	if out, err := vet.CombinedOutput(); err != nil {
		return "BROKEN", "does not compile or vet: " + tail(out)
	}
	var killers, survivors []string
	for _, tc := range m.tests {
		out, err := tc.exec(dir, false)
		switch {
		case err == nil:
			survivors = append(survivors, tc.String())
		case bytes.Contains(out, []byte("[build failed]")), bytes.Contains(out, []byte("[setup failed]")):
			return "BROKEN", tc.String() + " does not build: " + tail(out)
		default:
			killers = append(killers, tc.String())
		}
	}
	if len(survivors) > 0 {
		return "SURVIVED", "passing: " + strings.Join(survivors, "; ")
	}
	return "killed", "by " + strings.Join(killers, "; ")
}

// parse reads blocks of "key: value" lines separated by blank lines:
// name, file, find and replace once each, test once or more
// ("<package> <-run regexp>"). "#" starts a comment line.
func parse(s string) ([]mutant, error) {
	var ms []mutant
	var cur *mutant
	flush := func(line int) error {
		if cur == nil {
			return nil
		}
		if cur.name == "" || cur.file == "" || cur.find == "" || len(cur.tests) == 0 {
			return fmt.Errorf("line %d: mutant %q needs name, file, find and at least one test", line, cur.name)
		}
		if cur.find == cur.replace {
			return fmt.Errorf("line %d: mutant %q replaces its snippet by itself", line, cur.name)
		}
		ms = append(ms, *cur)
		cur = nil
		return nil
	}
	names := map[string]bool{}
	for i, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		if strings.TrimSpace(line) == "" {
			if err := flush(i + 1); err != nil {
				return nil, err
			}
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("line %d: want key: value", i+1)
		}
		val = strings.TrimPrefix(val, " ")
		if cur == nil {
			cur = &mutant{}
		}
		switch key {
		case "name":
			if names[val] {
				return nil, fmt.Errorf("line %d: mutant %q named twice", i+1, val)
			}
			names[val] = true
			cur.name = val
		case "file":
			cur.file = val
		case "find":
			cur.find = val
		case "replace":
			cur.replace = val
		case "test":
			pkg, re, ok := strings.Cut(strings.TrimSpace(val), " ")
			if !ok || strings.TrimSpace(re) == "" {
				return nil, fmt.Errorf("line %d: test wants a package and a -run regexp", i+1)
			}
			cur.tests = append(cur.tests, testCmd{pkg: pkg, run: strings.TrimSpace(re)})
		default:
			return nil, fmt.Errorf("line %d: unknown key %q", i+1, key)
		}
	}
	if err := flush(len(s)); err != nil {
		return nil, err
	}
	return ms, nil
}

// copyTree writes rev (git archive) or, when rev is empty, the working
// tree's tracked and untracked non-ignored files into dir.
func copyTree(dir, rev string) error {
	if rev != "" {
		archive := exec.Command("git", "archive", "--format=tar", rev)
		untar := exec.Command("tar", "-x", "-C", dir)
		pipe, err := archive.StdoutPipe()
		if err != nil {
			return err
		}
		untar.Stdin = pipe
		var stderr bytes.Buffer
		archive.Stderr, untar.Stderr = &stderr, &stderr
		if err := untar.Start(); err != nil {
			return err
		}
		if err := archive.Run(); err != nil {
			return fmt.Errorf("git archive %s: %v: %s", rev, err, stderr.String())
		}
		if err := untar.Wait(); err != nil {
			return fmt.Errorf("tar: %v: %s", err, stderr.String())
		}
		return nil
	}
	out, err := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		return err
	}
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src, err := os.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted in the working tree
		}
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, src, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func tail(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}
