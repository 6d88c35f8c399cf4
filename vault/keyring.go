package vault

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	sealing "github.com/perfectpay/perfectpay/internal/seal"
)

// KeySize is the size of every key in the hierarchy: AES-256.
const KeySize = sealing.KeySize

// Keyring errors.
var (
	// ErrKEKUnknown means a wrapped key names a KEK version this node lacks.
	ErrKEKUnknown = errors.New("vault: KEK version unknown to this node")
	// ErrKEKRetired means the KEK version is below min_decryption_version.
	ErrKEKRetired = errors.New("vault: KEK version is below min_decryption_version")
	// ErrDecrypt means authentication of a ciphertext failed: wrong key,
	// tampered bytes, or a ciphertext moved to another row (AAD mismatch).
	ErrDecrypt = errors.New("vault: ciphertext does not authenticate")
)

// Keyring holds the versioned key-encryption keys (KEKs). The KEKs never
// enter the database: they come from configuration, the environment or a
// file. New wraps use the active version; unwraps accept any known version
// not below MinDecrypt.
type Keyring struct {
	keys       map[int][]byte
	active     int
	minDecrypt int
}

// NewKeyring checks the versions and picks the active one (the newest when
// active is 0). minDecrypt 0 accepts every version.
func NewKeyring(keys map[int][]byte, active, minDecrypt int) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("vault: no KEK configured")
	}
	newest := 0
	cp := make(map[int][]byte, len(keys))
	for v, k := range keys {
		if v < 1 {
			return nil, fmt.Errorf("vault: KEK version %d: versions start at 1", v)
		}
		if len(k) != KeySize {
			return nil, fmt.Errorf("vault: KEK version %d is %d bytes; want %d", v, len(k), KeySize)
		}
		cp[v] = bytes.Clone(k)
		newest = max(newest, v)
	}
	if active == 0 {
		active = newest
	}
	if _, ok := cp[active]; !ok {
		return nil, fmt.Errorf("vault: active KEK version %d is not configured", active)
	}
	if minDecrypt > active {
		return nil, fmt.Errorf("vault: min_decryption_version %d is above the active KEK version %d", minDecrypt, active)
	}
	return &Keyring{keys: cp, active: active, minDecrypt: minDecrypt}, nil
}

// GenerateKey returns KeySize random bytes.
func GenerateKey() []byte {
	k := make([]byte, KeySize)
	if _, err := io.ReadFull(rand.Reader, k); err != nil {
		panic("vault: crypto/rand failed: " + err.Error())
	}
	return k
}

// Active is the version new wraps use.
func (k *Keyring) Active() int { return k.active }

// MinDecrypt is the oldest version unwraps accept (0: all).
func (k *Keyring) MinDecrypt() int { return k.minDecrypt }

// Versions lists the configured versions in ascending order.
func (k *Keyring) Versions() []int {
	out := make([]int, 0, len(k.keys))
	for v := range k.keys {
		out = append(out, v)
	}
	sort.Ints(out)
	return out
}

func (k *Keyring) wrap(plain, aad []byte) (int, []byte, error) {
	ct, err := seal(k.keys[k.active], plain, aad)
	return k.active, ct, err
}

func (k *Keyring) unwrap(version int, ct, aad []byte) ([]byte, error) {
	if version < k.minDecrypt {
		return nil, fmt.Errorf("%w (version %d, minimum %d)", ErrKEKRetired, version, k.minDecrypt)
	}
	key, ok := k.keys[version]
	if !ok {
		return nil, fmt.Errorf("%w (version %d)", ErrKEKUnknown, version)
	}
	return open(key, ct, aad)
}

// ParseKEKs parses KEK material: entries "VERSION:BASE64" separated by
// commas or new lines; blank lines and lines starting with # are ignored.
// This is the format of vault.keks, PERFECTPAY_VAULT_KEKS and the KEK file.
func ParseKEKs(s string) (map[int][]byte, error) {
	out := map[int][]byte{}
	sc := bufio.NewScanner(strings.NewReader(strings.ReplaceAll(s, ",", "\n")))
	for line := 1; sc.Scan(); line++ {
		e := strings.TrimSpace(sc.Text())
		if e == "" || strings.HasPrefix(e, "#") {
			continue
		}
		vs, b64, ok := strings.Cut(e, ":")
		if !ok {
			return nil, fmt.Errorf("KEK entry %d: want VERSION:BASE64", line)
		}
		v, err := strconv.Atoi(strings.TrimSpace(vs))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("KEK entry %d: version must be a positive integer", line)
		}
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
		if err != nil || len(key) != KeySize {
			return nil, fmt.Errorf("KEK entry %d (version %d): key must be base64 of %d bytes", line, v, KeySize)
		}
		if _, dup := out[v]; dup {
			return nil, fmt.Errorf("KEK entry %d: version %d appears twice", line, v)
		}
		out[v] = key
	}
	return out, nil
}

// ReadKEKFile reads a KEK file (the ParseKEKs format). It refuses files
// that other users can read.
func ReadKEKFile(path string) (map[int][]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("KEK file %s has mode %v: it must not be readable by group or others (chmod 600)", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseKEKs(string(b))
}

// FormatKEK renders one entry of the KEK format.
func FormatKEK(version int, key []byte) string {
	return strconv.Itoa(version) + ":" + base64.StdEncoding.EncodeToString(key)
}

// RotateKEKFile adds a freshly generated KEK to the file at path (created,
// mode 0600, when missing) under the next version and returns that version.
// The file is replaced atomically, so a crash leaves the old or new file.
func RotateKEKFile(path string) (int, error) {
	existing := map[int][]byte{}
	var old []byte
	if _, err := os.Stat(path); err == nil {
		if existing, err = ReadKEKFile(path); err != nil {
			return 0, err
		}
		if old, err = os.ReadFile(path); err != nil {
			return 0, err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return 0, err
	}
	next := 1
	for v := range existing {
		next = max(next, v+1)
	}
	var buf bytes.Buffer
	if len(old) == 0 {
		buf.WriteString("# PerfectPay key-encryption keys: VERSION:BASE64 (32 bytes). Keep this file secret (mode 0600).\n")
	}
	buf.Write(old)
	if len(old) > 0 && old[len(old)-1] != '\n' {
		buf.WriteByte('\n')
	}
	buf.WriteString(FormatKEK(next, GenerateKey()) + "\n")
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kek-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return 0, err
	}
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return 0, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return 0, err
	}
	if err := tmp.Close(); err != nil {
		return 0, err
	}
	return next, os.Rename(tmp.Name(), path)
}

// seal encrypts plain under key, bound to aad (internal/seal).
func seal(key, plain, aad []byte) ([]byte, error) {
	return sealing.Seal(key, plain, aad)
}

// open decrypts what seal sealed. Every failure (wrong key, another row's
// additional data, tampered or truncated bytes, an unknown format) is
// ErrDecrypt, the cause wrapped with it.
func open(key, ct, aad []byte) ([]byte, error) {
	plain, err := sealing.Open(key, ct, aad)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecrypt, err)
	}
	return plain, nil
}
