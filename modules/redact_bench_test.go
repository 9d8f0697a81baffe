package modules

import (
	"encoding/hex"
	"fmt"
	"math/rand"
	"strings"
	"testing"
)

// The benchmarks below are the slow cases of redaction: many secrets that share their
// first bytes with the text (hex tokens in hex output), secrets with a long common prefix
// in text that is that prefix over and over, and PEM keys in text of dashed lines. Each
// redacts 1 MiB, the output cap. Compare with BenchmarkReplacer, which only replaces.

func hexString(r *rand.Rand, n int) string {
	b := make([]byte, (n+1)/2)
	r.Read(b)
	return hex.EncodeToString(b)[:n]
}

func hexSecrets(r *rand.Rand, k int) []string {
	out := make([]string, k)
	for i := range out {
		out[i] = hexString(r, 32)
	}
	return out
}

// hexText is 1 MiB of lines of hex, like a command that prints hashes.
func hexText(r *rand.Rand) string {
	return strings.Repeat(hexString(r, 64)+"\n", (1<<20)/65)
}

func benchRedact(b *testing.B, secrets []string, text string) {
	red := NewRedactor(secrets)
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for range b.N {
		red.Redact(text)
	}
}

func BenchmarkRedactHex(b *testing.B) {
	for _, k := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("secrets=%d", k), func(b *testing.B) {
			r := rand.New(rand.NewSource(1))
			benchRedact(b, hexSecrets(r, k), hexText(r))
		})
	}
}

func BenchmarkRedactCommonPrefix(b *testing.B) {
	for _, k := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("secrets=%d", k), func(b *testing.B) {
			r := rand.New(rand.NewSource(1))
			secrets := make([]string, k)
			for i := range secrets {
				secrets[i] = strings.Repeat("a", 60) + hexString(r, 4)
			}
			benchRedact(b, secrets, strings.Repeat("a", 1<<20))
		})
	}
}

func pemSecrets(r *rand.Rand, k int) []string {
	out := make([]string, k)
	for i := range out {
		out[i] = "-----BEGIN OPENSSH PRIVATE KEY-----\n" + hexString(r, 400) + "\n-----END OPENSSH PRIVATE KEY-----\n"
	}
	return out
}

func BenchmarkRedactPEM(b *testing.B) {
	for _, k := range []int{20, 100} {
		r := rand.New(rand.NewSource(1))
		secrets := pemSecrets(r, k)
		b.Run(fmt.Sprintf("dashes/secrets=%d", k), func(b *testing.B) {
			benchRedact(b, secrets, strings.Repeat(strings.Repeat("-", 79)+"\n", (1<<20)/80))
		})
		b.Run(fmt.Sprintf("headers/secrets=%d", k), func(b *testing.B) {
			benchRedact(b, secrets, strings.Repeat("-----BEGIN OPENSSH PRIVATE KEY-----\n", (1<<20)/36))
		})
	}
}

// BenchmarkHelperPath is what the helper does with a command's 1 MiB of stdout: capture
// it, show it (redacted and cut), and redact the result that holds it, building the
// Redactors as it goes.
func BenchmarkHelperPath(b *testing.B) {
	for _, k := range []int{100, 1000} {
		b.Run(fmt.Sprintf("secrets=%d", k), func(b *testing.B) {
			r := rand.New(rand.NewSource(1))
			secrets, text := hexSecrets(r, k), []byte(hexText(r))
			b.SetBytes(int64(len(text)))
			b.ResetTimer()
			for range b.N {
				env := &Env{}
				env.SetSecrets(secrets)
				c := env.NewCapture()
				c.Write(text)
				res := &Result{Msg: "ran: x", Data: map[string]any{"stdout": c.String()}}
				res.Redact(secrets)
			}
		})
	}
}

func BenchmarkNewRedactor(b *testing.B) {
	for _, k := range []int{100, 1000} {
		b.Run(fmt.Sprintf("hex/secrets=%d", k), func(b *testing.B) {
			secrets := hexSecrets(rand.New(rand.NewSource(1)), k)
			for range b.N {
				NewRedactor(secrets)
			}
		})
	}
	b.Run("pem/secrets=100", func(b *testing.B) {
		secrets := pemSecrets(rand.New(rand.NewSource(1)), 100)
		for range b.N {
			NewRedactor(secrets)
		}
	})
}

// BenchmarkReplacer is the yardstick: strings.Replacer on the hex case.
func BenchmarkReplacer(b *testing.B) {
	for _, k := range []int{100, 1000} {
		b.Run(fmt.Sprintf("secrets=%d", k), func(b *testing.B) {
			r := rand.New(rand.NewSource(1))
			secrets, text := hexSecrets(r, k), hexText(r)
			var pairs []string
			for _, s := range secrets {
				pairs = append(pairs, s, Redacted)
			}
			rep := strings.NewReplacer(pairs...)
			b.SetBytes(int64(len(text)))
			b.ResetTimer()
			for range b.N {
				rep.Replace(text)
			}
		})
	}
}
