package main

import (
	"encoding/json"
	"fmt"
	"io"

	client "go.etcd.io/etcd/client/v2"
)

// printResponseKey prints a key response in one of etcdctl's formats:
// simple (the value, or the previous value after a delete), extended
// (RFC 2822 style headers, then the value) or json (the client's Response).
func printResponseKey(w io.Writer, resp *client.Response, format string) {
	switch format {
	case "simple":
		if resp.Action != "delete" {
			fmt.Fprintln(w, resp.Node.Value)
		} else {
			fmt.Fprintln(w, "PrevNode.Value:", resp.PrevNode.Value)
		}
	case "extended":
		fmt.Fprintln(w, "Key:", resp.Node.Key)
		fmt.Fprintln(w, "Created-Index:", resp.Node.CreatedIndex)
		fmt.Fprintln(w, "Modified-Index:", resp.Node.ModifiedIndex)
		if resp.PrevNode != nil {
			fmt.Fprintln(w, "PrevNode.Value:", resp.PrevNode.Value)
		}
		fmt.Fprintln(w, "TTL:", resp.Node.TTL)
		fmt.Fprintln(w, "Index:", resp.Index)
		if resp.Action != "delete" {
			fmt.Fprintln(w, "")
			fmt.Fprintln(w, resp.Node.Value)
		}
	case "json":
		b, err := json.Marshal(resp)
		if err != nil {
			panic(err) // a Response always marshals
		}
		fmt.Fprintln(w, string(b))
	default:
		fmt.Fprintln(stderr, "Unsupported output format:", format)
	}
}

// printLs prints a listing like ls(1) in simple format: a key's own name,
// or a directory's children (recursively when they were fetched so); with
// slash, directories get a trailing "/". Other formats print the response.
func printLs(w io.Writer, resp *client.Response, format string, slash bool) {
	if format != "simple" {
		printResponseKey(w, resp, format)
		return
	}
	if !resp.Node.Dir {
		fmt.Fprintln(w, resp.Node.Key)
	}
	for _, n := range resp.Node.Nodes {
		printNodes(w, n, slash)
	}
}

func printNodes(w io.Writer, n *client.Node, slash bool) {
	if n.Dir && slash {
		fmt.Fprintf(w, "%v/\n", n.Key)
	} else {
		fmt.Fprintln(w, n.Key)
	}
	for _, child := range n.Nodes {
		printNodes(w, child, slash)
	}
}
