package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// maxCachedCreds bounds the credential cache; beyond it an arbitrary
// entry is dropped (it costs one more bcrypt later, nothing else).
const maxCachedCreds = 4096

// credCache remembers which (bcrypt hash, password) pairs bcrypt accepted.
// An entry is a fact about that exact hash, so it can never go stale: a
// changed password has a new hash (new salt) and misses, a deleted user
// is not found before the cache is asked, and roles are never cached.
// Failures are not cached at all. Entries are HMAC-SHA256 digests under
// a per-process random key, so no password is kept in memory.
type credCache struct {
	key [32]byte
	mu  sync.RWMutex
	ok  map[[32]byte]struct{}
}

func (c *credCache) init() {
	if _, err := rand.Read(c.key[:]); err != nil {
		panic(fmt.Sprintf("auth: no randomness for the credential cache: %v", err))
	}
	c.ok = make(map[[32]byte]struct{})
}

func (c *credCache) digest(hash, password string) [32]byte {
	m := hmac.New(sha256.New, c.key[:])
	m.Write([]byte(hash))
	m.Write([]byte{0})
	m.Write([]byte(password))
	var d [32]byte
	m.Sum(d[:0])
	return d
}

// check reports whether password matches the bcrypt hash, running bcrypt
// only for a pair not verified before.
func (c *credCache) check(hash, password string) bool {
	d := c.digest(hash, password)
	c.mu.RLock()
	_, ok := c.ok[d]
	c.mu.RUnlock()
	if ok {
		return true
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
		return false
	}
	c.mu.Lock()
	if len(c.ok) >= maxCachedCreds {
		for k := range c.ok {
			delete(c.ok, k)
			break
		}
	}
	c.ok[d] = struct{}{}
	c.mu.Unlock()
	return true
}
