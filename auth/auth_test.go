package auth

import (
	"strconv"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestCredCache: a verified pair is remembered, a wrong password never
// is, a new hash for the same password misses, and the cache is bounded.
func TestCredCache(t *testing.T) {
	var c credCache
	c.init()
	hash := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	h1, h2 := hash("pw"), hash("pw")
	cases := []struct {
		name     string
		hash, pw string
		want     bool
		cached   int
	}{
		{"wrong password", h1, "nope", false, 0},
		{"right password", h1, "pw", true, 1},
		{"again, from the cache", h1, "pw", true, 1},
		{"wrong password after a right one", h1, "pw ", false, 1},
		{"prefix of the password", h1, "p", false, 1},
		{"another hash of pw is checked anew", h2, "pw", true, 2},
		{"a hash of another password", hash("other"), "pw", false, 2},
	}
	for _, tc := range cases {
		if got := c.check(tc.hash, tc.pw); got != tc.want {
			t.Errorf("%s: check = %v, want %v", tc.name, got, tc.want)
		}
		if n := len(c.ok); n != tc.cached {
			t.Errorf("%s: %d cached, want %d", tc.name, n, tc.cached)
		}
	}
	// Fill the cache to its bound: a new verified pair still goes in, and
	// the bound holds.
	for i := len(c.ok); i < maxCachedCreds; i++ {
		c.ok[c.digest("filler", strconv.Itoa(i))] = struct{}{}
	}
	h3 := hash("third")
	if !c.check(h3, "third") {
		t.Fatal("full cache: right password refused")
	}
	if _, ok := c.ok[c.digest(h3, "third")]; !ok || len(c.ok) != maxCachedCreds {
		t.Errorf("full cache: new pair cached %v, %d entries; want true, %d", ok, len(c.ok), maxCachedCreds)
	}
}

func TestKeyPatterns(t *testing.T) {
	perm := RWPermission{Read: []string{"/foo/*", "/exact", "", "/pre*"}, Write: []string{"/w"}}
	cases := []struct {
		key              string
		write, recursive bool
		want             bool
	}{
		{"/foo/a", false, false, true},
		{"/foo/a/b", false, true, true},
		{"/foo/", false, true, true},
		{"/foo", false, false, false},
		{"/foobar", false, false, false},
		{"/exact", false, false, true},
		{"/exact", false, true, false},
		{"/exact/x", false, false, false},
		{"/prefix", false, false, true},
		{"/prefix", false, true, true},
		{"", false, false, false},
		{"/foo/a", true, false, false},
		{"/w", true, false, true},
		{"/w", true, true, false},
	}
	for _, c := range cases {
		if got := perm.hasAccess(c.key, c.write, c.recursive); got != c.want {
			t.Errorf("hasAccess(%q, write=%v, recursive=%v) = %v, want %v", c.key, c.write, c.recursive, got, c.want)
		}
	}
}
