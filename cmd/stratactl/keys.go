package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli"
	client "go.etcd.io/etcd/client/v2"
)

// keysAction wraps a keys command: it builds the keys API (syncing the
// endpoints first) and hands it to f.
func keysAction(f func(*cli.Context, client.KeysAPI) error) func(*cli.Context) error {
	return func(c *cli.Context) error {
		ki, err := mustNewKeysAPI(c)
		if err != nil {
			return err
		}
		return f(c, ki)
	}
}

var ttlFlag = cli.IntFlag{Name: "ttl", Value: 0, Usage: "key time-to-live in seconds"}

func ttlOf(c *cli.Context) time.Duration { return time.Duration(c.Int("ttl")) * time.Second }

func newGetCommand() cli.Command {
	return cli.Command{
		Name:      "get",
		Usage:     "retrieve the value of a key",
		ArgsUsage: "<key>",
		Flags: []cli.Flag{
			cli.BoolFlag{Name: "sort", Usage: "returns result in sorted order"},
			cli.BoolFlag{Name: "quorum, q", Usage: "require quorum for get request"},
		},
		Action: keysAction(getCommand),
	}
}

func getCommand(c *cli.Context, ki client.KeysAPI) error {
	if len(c.Args()) == 0 {
		return handleError(c, exitBadArgs, errors.New("key required"))
	}
	ctx, cancel := contextWithTotalTimeout(c)
	resp, err := ki.Get(ctx, c.Args()[0], &client.GetOptions{Sort: c.Bool("sort"), Quorum: c.Bool("quorum")})
	cancel()
	if err != nil {
		return handleError(c, exitServerError, err)
	}
	if resp.Node.Dir {
		fmt.Fprintf(stderr, "%s: is a directory\n", resp.Node.Key)
		return exit(exitBadArgs)
	}
	printResponseKey(stdout, resp, c.GlobalString("output"))
	return nil
}

func newLsCommand() cli.Command {
	return cli.Command{
		Name:      "ls",
		Usage:     "retrieve a directory",
		ArgsUsage: "[key]",
		Flags: []cli.Flag{
			cli.BoolFlag{Name: "sort", Usage: "returns result in sorted order"},
			cli.BoolFlag{Name: "recursive, r", Usage: "returns all key names recursively for the given path"},
			cli.BoolFlag{Name: "p", Usage: "append slash (/) to directories"},
			cli.BoolFlag{Name: "quorum, q", Usage: "require quorum for get request"},
		},
		Action: keysAction(lsCommand),
	}
}

func lsCommand(c *cli.Context, ki client.KeysAPI) error {
	key := "/"
	if len(c.Args()) != 0 {
		key = c.Args()[0]
	}
	ctx, cancel := contextWithTotalTimeout(c)
	resp, err := ki.Get(ctx, key, &client.GetOptions{Sort: c.Bool("sort"), Recursive: c.Bool("recursive"), Quorum: c.Bool("quorum")})
	cancel()
	if err != nil {
		return handleError(c, exitServerError, err)
	}
	printLs(stdout, resp, c.GlobalString("output"), c.Bool("p"))
	return nil
}

func newSetCommand() cli.Command {
	return cli.Command{
		Name:      "set",
		Usage:     "set the value of a key",
		ArgsUsage: "<key> <value>",
		Description: `Set sets the value of a key.

   When <value> begins with '-', <value> is interpreted as a flag.
   Insert '--' for workaround:

   $ set -- <key> <value>`,
		Flags: []cli.Flag{
			ttlFlag,
			cli.StringFlag{Name: "swap-with-value", Value: "", Usage: "previous value"},
			cli.IntFlag{Name: "swap-with-index", Value: 0, Usage: "previous index"},
		},
		Action: keysAction(setCommand),
	}
}

// keyAndValue is the <key> <value> pair of set, mk and update; the value
// may come from stdin.
func keyAndValue(c *cli.Context) (key, value string, err error) {
	if len(c.Args()) == 0 {
		return "", "", handleError(c, exitBadArgs, errors.New("key required"))
	}
	value, err = argOrStdin(c.Args(), stdin, 1)
	if err != nil {
		return "", "", handleError(c, exitBadArgs, errors.New("value required"))
	}
	return c.Args()[0], value, nil
}

func setCommand(c *cli.Context, ki client.KeysAPI) error {
	key, value, err := keyAndValue(c)
	if err != nil {
		return err
	}
	ctx, cancel := contextWithTotalTimeout(c)
	resp, err := ki.Set(ctx, key, value, &client.SetOptions{
		TTL:       ttlOf(c),
		PrevIndex: uint64(c.Int("swap-with-index")),
		PrevValue: c.String("swap-with-value"),
	})
	cancel()
	if err != nil {
		return handleError(c, exitServerError, err)
	}
	printResponseKey(stdout, resp, c.GlobalString("output"))
	return nil
}

func newMkCommand() cli.Command {
	return cli.Command{
		Name:      "mk",
		Usage:     "make a new key with a given value",
		ArgsUsage: "<key> <value>",
		Flags: []cli.Flag{
			cli.BoolFlag{Name: "in-order", Usage: "create in-order key under directory <key>"},
			ttlFlag,
		},
		Action: keysAction(mkCommand),
	}
}

func mkCommand(c *cli.Context, ki client.KeysAPI) error {
	key, value, err := keyAndValue(c)
	if err != nil {
		return err
	}
	var resp *client.Response
	ctx, cancel := contextWithTotalTimeout(c)
	if c.Bool("in-order") {
		// A new key named by the index under the directory <key>.
		resp, err = ki.CreateInOrder(ctx, key, value, &client.CreateInOrderOptions{TTL: ttlOf(c)})
	} else {
		// Only if the key does not exist yet: mk never overwrites.
		resp, err = ki.Set(ctx, key, value, &client.SetOptions{TTL: ttlOf(c), PrevExist: client.PrevNoExist})
	}
	cancel()
	if err != nil {
		return handleError(c, exitServerError, err)
	}
	printResponseKey(stdout, resp, c.GlobalString("output"))
	return nil
}

func newMkdirCommand() cli.Command {
	return cli.Command{
		Name:      "mkdir",
		Usage:     "make a new directory",
		ArgsUsage: "<key>",
		Flags:     []cli.Flag{ttlFlag},
		Action:    keysAction(dirCommand(client.PrevNoExist)),
	}
}

func newSetDirCommand() cli.Command {
	return cli.Command{
		Name:      "setdir",
		Usage:     "create a new directory or update an existing directory TTL",
		ArgsUsage: "<key>",
		Flags:     []cli.Flag{ttlFlag},
		Action:    keysAction(dirCommand(client.PrevIgnore)),
	}
}

func newUpdateDirCommand() cli.Command {
	return cli.Command{
		Name:      "updatedir",
		Usage:     "update an existing directory",
		ArgsUsage: "<key> <value>",
		Flags:     []cli.Flag{ttlFlag},
		Action:    keysAction(dirCommand(client.PrevExist)),
	}
}

// dirCommand is mkdir (prevExist false), setdir (ignored) and updatedir
// (true): they print nothing in simple format.
func dirCommand(prevExist client.PrevExistType) func(*cli.Context, client.KeysAPI) error {
	return func(c *cli.Context, ki client.KeysAPI) error {
		if len(c.Args()) == 0 {
			return handleError(c, exitBadArgs, errors.New("key required"))
		}
		ctx, cancel := contextWithTotalTimeout(c)
		resp, err := ki.Set(ctx, c.Args()[0], "", &client.SetOptions{TTL: ttlOf(c), Dir: true, PrevExist: prevExist})
		cancel()
		if err != nil {
			return handleError(c, exitServerError, err)
		}
		if c.GlobalString("output") != "simple" {
			printResponseKey(stdout, resp, c.GlobalString("output"))
		}
		return nil
	}
}

func newUpdateCommand() cli.Command {
	return cli.Command{
		Name:      "update",
		Usage:     "update an existing key with a given value",
		ArgsUsage: "<key> <value>",
		Flags:     []cli.Flag{ttlFlag},
		Action:    keysAction(updateCommand),
	}
}

func updateCommand(c *cli.Context, ki client.KeysAPI) error {
	key, value, err := keyAndValue(c)
	if err != nil {
		return err
	}
	ctx, cancel := contextWithTotalTimeout(c)
	resp, err := ki.Set(ctx, key, value, &client.SetOptions{TTL: ttlOf(c), PrevExist: client.PrevExist})
	cancel()
	if err != nil {
		return handleError(c, exitServerError, err)
	}
	printResponseKey(stdout, resp, c.GlobalString("output"))
	return nil
}

func newRmCommand() cli.Command {
	return cli.Command{
		Name:      "rm",
		Usage:     "remove a key or a directory",
		ArgsUsage: "<key>",
		Flags: []cli.Flag{
			cli.BoolFlag{Name: "dir", Usage: "removes the key if it is an empty directory or a key-value pair"},
			cli.BoolFlag{Name: "recursive, r", Usage: "removes the key and all child keys(if it is a directory)"},
			cli.StringFlag{Name: "with-value", Value: "", Usage: "previous value"},
			cli.IntFlag{Name: "with-index", Value: 0, Usage: "previous index"},
		},
		Action: keysAction(func(c *cli.Context, ki client.KeysAPI) error {
			return removeCommand(c, ki, &client.DeleteOptions{
				PrevIndex: uint64(c.Int("with-index")),
				PrevValue: c.String("with-value"),
				Dir:       c.Bool("dir"),
				Recursive: c.Bool("recursive"),
			})
		}),
	}
}

func newRmdirCommand() cli.Command {
	return cli.Command{
		Name:      "rmdir",
		Usage:     "removes the key if it is an empty directory or a key-value pair",
		ArgsUsage: "<key>",
		Action: keysAction(func(c *cli.Context, ki client.KeysAPI) error {
			return removeCommand(c, ki, &client.DeleteOptions{Dir: true})
		}),
	}
}

// removeCommand is rm and rmdir: a removed key prints its previous value,
// a removed directory prints nothing in simple format.
func removeCommand(c *cli.Context, ki client.KeysAPI, opts *client.DeleteOptions) error {
	if len(c.Args()) == 0 {
		return handleError(c, exitBadArgs, errors.New("key required"))
	}
	ctx, cancel := contextWithTotalTimeout(c)
	resp, err := ki.Delete(ctx, c.Args()[0], opts)
	cancel()
	if err != nil {
		return handleError(c, exitServerError, err)
	}
	if !resp.Node.Dir || c.GlobalString("output") != "simple" {
		printResponseKey(stdout, resp, c.GlobalString("output"))
	}
	return nil
}
