package main

import (
	"fmt"
	"net"
	"os"
)

// sdNotify sends state (e.g. "READY=1") to systemd's notification socket
// when the member runs under a Type=notify unit (NOTIFY_SOCKET set), as
// etcd does once it serves clients; it does nothing otherwise. An
// abstract socket is named with a leading "@".
func sdNotify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify systemd at %s: %w", os.Getenv("NOTIFY_SOCKET"), err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("notify systemd at %s: %w", os.Getenv("NOTIFY_SOCKET"), err)
	}
	return nil
}
