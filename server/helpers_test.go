package server_test

import "crypto/sha256"

func hashOf(method, path, body string) []byte {
	s := sha256.New()
	s.Write([]byte(method + "\n" + path + "\n" + body))
	return s.Sum(nil)
}
