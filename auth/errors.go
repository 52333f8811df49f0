package auth

import "fmt"

// Error is etcd's v2auth.Error: the HTTP status the API answers with and
// its message. Failures to read or write the store are other errors.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

// Errorf is an Error whose message carries etcd's "auth: " prefix.
func Errorf(status int, format string, a ...any) *Error {
	return &Error{Status: status, Message: "auth: " + fmt.Sprintf(format, a...)}
}
