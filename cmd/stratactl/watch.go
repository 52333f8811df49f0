package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"

	"github.com/urfave/cli"
	client "go.etcd.io/etcd/client/v2"
)

func newWatchCommand() cli.Command {
	return cli.Command{
		Name:      "watch",
		Usage:     "watch a key for changes",
		ArgsUsage: "<key>",
		Flags: []cli.Flag{
			cli.BoolFlag{Name: "forever, f", Usage: "forever watch a key until CTRL+C"},
			cli.IntFlag{Name: "after-index", Value: 0, Usage: "watch after the given index"},
			cli.BoolFlag{Name: "recursive, r", Usage: "returns all values for key and child keys"},
		},
		Action: keysAction(watchCommand),
	}
}

// exitOnInterrupt ends the process with status 0 on Ctrl-C, as etcdctl's
// watches do.
func exitOnInterrupt() {
	sigch := make(chan os.Signal, 1)
	signal.Notify(sigch, os.Interrupt)
	go func() {
		<-sigch
		os.Exit(exitSuccess)
	}()
}

// watchCommand prints the next change of the key (of any key below it with
// --recursive, each preceded by "[action] key"), or every change with
// --forever. Changes to directories are skipped.
func watchCommand(c *cli.Context, ki client.KeysAPI) error {
	if len(c.Args()) == 0 {
		return handleError(c, exitBadArgs, errors.New("key required"))
	}
	recursive := c.Bool("recursive")
	forever := c.Bool("forever")
	w := ki.Watcher(c.Args()[0], &client.WatcherOptions{AfterIndex: uint64(c.Int("after-index")), Recursive: recursive})
	exitOnInterrupt()
	for {
		resp, err := w.Next(context.TODO())
		if err != nil {
			return handleError(c, exitServerError, err)
		}
		if resp.Node.Dir {
			continue
		}
		if recursive {
			fmt.Fprintf(stdout, "[%s] %s\n", resp.Action, resp.Node.Key)
		}
		printResponseKey(stdout, resp, c.GlobalString("output"))
		if !forever {
			return nil
		}
	}
}

func newExecWatchCommand() cli.Command {
	return cli.Command{
		Name:      "exec-watch",
		Usage:     "watch a key for changes and exec an executable",
		ArgsUsage: "<key> <command> [args...]",
		Flags: []cli.Flag{
			cli.IntFlag{Name: "after-index", Value: 0, Usage: "watch after the given index"},
			cli.BoolFlag{Name: "recursive, r", Usage: "watch all values for key and child keys"},
		},
		// Without reordering, a "--" after the key stays among the
		// arguments, so `<key> -- <command>` works as documented.
		// (etcdctl 3.4.23's urfave/cli moves the "--" first and drops it,
		// and then watches the command's last argument.)
		SkipArgReorder: true,
		Action:         keysAction(execWatchCommand),
	}
}

// execWatchCommand runs a command for every change of the key until
// Ctrl-C, with the change in its environment (watchEnv). The arguments are
// `<key> -- <command> [args...]`, or `<command> [args...] <key>`.
func execWatchCommand(c *cli.Context, ki client.KeysAPI) error {
	args := c.Args()
	if len(args) < 2 {
		return handleError(c, exitBadArgs, errors.New("key and command to exec required"))
	}
	var key string
	var cmdArgs []string
	foundSep := false
	for i := range args {
		if args[i] == "--" && i != 0 {
			foundSep = true
			break
		}
	}
	if foundSep {
		key = args[0]
		cmdArgs = args[2:]
	} else {
		// Without "--" the flag parser leaves the command first and the key
		// last.
		key = args[len(args)-1]
		cmdArgs = args[:len(args)-1]
	}
	exitOnInterrupt()
	w := ki.Watcher(key, &client.WatcherOptions{AfterIndex: uint64(c.Int("after-index")), Recursive: c.Bool("recursive")})
	for {
		resp, err := w.Next(context.TODO())
		if err != nil {
			return handleError(c, exitServerError, err)
		}
		if resp.Node.Dir {
			fmt.Fprintf(stderr, "Ignored dir %s change\n", resp.Node.Key)
			continue
		}
		cmd := exec.Command(cmdArgs[0], cmdArgs[1:]...)
		cmd.Env = watchEnv(resp, os.Environ())
		cmd.Stdout = os.Stdout
		cmd.Stderr = os.Stderr
		// Commands run concurrently with the watch, as in etcdctl: a slow
		// command does not hold back the next event.
		go func() {
			if err := cmd.Start(); err != nil {
				fmt.Fprint(stderr, err.Error())
				os.Exit(exitBadArgs)
			}
			_ = cmd.Wait() // the command's own failure is its business
		}()
	}
}

// watchEnv is env plus the ETCD_WATCH_* variables describing the change.
func watchEnv(resp *client.Response, env []string) []string {
	env = append(env, "ETCD_WATCH_ACTION="+resp.Action)
	env = append(env, "ETCD_WATCH_MODIFIED_INDEX="+fmt.Sprintf("%d", resp.Node.ModifiedIndex))
	env = append(env, "ETCD_WATCH_KEY="+resp.Node.Key)
	env = append(env, "ETCD_WATCH_VALUE="+resp.Node.Value)
	return env
}
