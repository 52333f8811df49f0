package main

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/urfave/cli"
	"go.etcd.io/etcd/client/pkg/v3/pathutil"
	client "go.etcd.io/etcd/client/v2"
)

// The user, role and auth commands speak etcd's /v2/auth API. Their
// failures print the error alone and exit 1, as etcdctl's do.

func newUserCommands() cli.Command {
	rolesFlag := cli.StringSliceFlag{Name: "roles", Value: new(cli.StringSlice), Usage: "List of roles to grant or revoke"}
	return cli.Command{
		Name:  "user",
		Usage: "user add, grant and revoke subcommands",
		Subcommands: []cli.Command{
			{Name: "add", Usage: "add a new user for the etcd cluster", ArgsUsage: "<user>", Action: userAdd},
			{Name: "get", Usage: "get details for a user", ArgsUsage: "<user>", Action: userGet},
			{Name: "list", Usage: "list all current users", ArgsUsage: "<user>", Action: userList},
			{Name: "remove", Usage: "remove a user for the etcd cluster", ArgsUsage: "<user>", Action: userRemove},
			{Name: "grant", Usage: "grant roles to an etcd user", ArgsUsage: "<user>", Flags: []cli.Flag{rolesFlag}, Action: func(c *cli.Context) error { return userGrantRevoke(c, true) }},
			{Name: "revoke", Usage: "revoke roles for an etcd user", ArgsUsage: "<user>", Flags: []cli.Flag{rolesFlag}, Action: func(c *cli.Context) error { return userGrantRevoke(c, false) }},
			{Name: "passwd", Usage: "change password for a user", ArgsUsage: "<user>", Action: userPasswd},
		},
	}
}

func newAuthUserAPI(c *cli.Context) (client.AuthUserAPI, error) {
	hc, err := mustNewClient(c)
	if err != nil {
		return nil, err
	}
	if c.GlobalBool("debug") {
		fmt.Fprintf(stderr, "Cluster-Endpoints: %s\n", strings.Join(hc.Endpoints(), ", "))
	}
	return client.NewAuthUserAPI(hc), nil
}

// userAPIAndName checks for exactly one argument, the user name.
func userAPIAndName(c *cli.Context) (client.AuthUserAPI, string, error) {
	if len(c.Args()) != 1 {
		return nil, "", failf("Please provide a username\n")
	}
	api, err := newAuthUserAPI(c)
	if err != nil {
		return nil, "", err
	}
	return api, c.Args()[0], nil
}

func userList(c *cli.Context) error {
	if len(c.Args()) != 0 {
		return failf("No arguments accepted\n")
	}
	api, err := newAuthUserAPI(c)
	if err != nil {
		return err
	}
	ctx, cancel := contextWithTotalTimeout(c)
	users, err := api.ListUsers(ctx)
	cancel()
	if err != nil {
		return failf("%s\n", err.Error())
	}
	for _, u := range users {
		fmt.Fprintf(stdout, "%s\n", u)
	}
	return nil
}

// userAdd creates <user>, or <user>:<password>; without a password it is
// prompted for.
func userAdd(c *cli.Context) error {
	api, userarg, err := userAPIAndName(c)
	if err != nil {
		return err
	}
	ctx, cancel := contextWithTotalTimeout(c)
	defer cancel()
	user, _, _ := strings.Cut(userarg, ":")
	_, pass, err := usernamePassword("New password: ", userarg)
	if err != nil {
		return failf("Error reading password: %v\n", err)
	}
	if err := api.AddUser(ctx, user, pass); err != nil {
		return failf("%s\n", err.Error())
	}
	fmt.Fprintf(stdout, "User %s created\n", user)
	return nil
}

func userRemove(c *cli.Context) error {
	api, user, err := userAPIAndName(c)
	if err != nil {
		return err
	}
	ctx, cancel := contextWithTotalTimeout(c)
	err = api.RemoveUser(ctx, user)
	cancel()
	if err != nil {
		return failf("%s\n", err.Error())
	}
	fmt.Fprintf(stdout, "User %s removed\n", user)
	return nil
}

func userPasswd(c *cli.Context) error {
	api, user, err := userAPIAndName(c)
	if err != nil {
		return err
	}
	ctx, cancel := contextWithTotalTimeout(c)
	defer cancel()
	pass, err := askPassword("New password: ")
	if err != nil {
		return failf("Error reading password: %v\n", err)
	}
	if _, err := api.ChangePassword(ctx, user, pass); err != nil {
		return failf("%s\n", err.Error())
	}
	fmt.Fprintf(stdout, "Password updated\n")
	return nil
}

func userGrantRevoke(c *cli.Context, grant bool) error {
	roles := c.StringSlice("roles")
	if len(roles) == 0 {
		return failf("No roles specified; please use `--roles`\n")
	}
	ctx, cancel := contextWithTotalTimeout(c)
	defer cancel()
	api, user, err := userAPIAndName(c)
	if err != nil {
		return err
	}
	if grant {
		_, err = api.GrantUser(ctx, user, roles)
	} else {
		_, err = api.RevokeUser(ctx, user, roles)
	}
	if err != nil {
		return failf("%s\n", err.Error())
	}
	fmt.Fprintf(stdout, "User %s updated\n", user)
	return nil
}

func userGet(c *cli.Context) error {
	api, name, err := userAPIAndName(c)
	if err != nil {
		return err
	}
	ctx, cancel := contextWithTotalTimeout(c)
	user, err := api.GetUser(ctx, name)
	cancel()
	if err != nil {
		return failf("%s\n", err.Error())
	}
	fmt.Fprintf(stdout, "User: %s\n", user.User)
	fmt.Fprintf(stdout, "Roles: %s\n", strings.Join(user.Roles, " "))
	return nil
}

func newRoleCommands() cli.Command {
	permFlags := func(verb, verbed string) []cli.Flag {
		return []cli.Flag{
			cli.StringFlag{Name: "path", Value: "", Usage: "Path " + verbed + " for the role to access"},
			cli.BoolFlag{Name: "read", Usage: verb + " read-only access"},
			cli.BoolFlag{Name: "write", Usage: verb + " write-only access"},
			cli.BoolFlag{Name: "readwrite, rw", Usage: verb + " read-write access"},
		}
	}
	revokeFlags := permFlags("Revoke", "revoked")
	revokeFlags[1] = cli.BoolFlag{Name: "read", Usage: "Revoke read access"}
	revokeFlags[2] = cli.BoolFlag{Name: "write", Usage: "Revoke write access"}
	return cli.Command{
		Name:  "role",
		Usage: "role add, grant and revoke subcommands",
		Subcommands: []cli.Command{
			{Name: "add", Usage: "add a new role for the etcd cluster", ArgsUsage: "<role> ", Action: roleAdd},
			{Name: "get", Usage: "get details for a role", ArgsUsage: "<role>", Action: roleGet},
			{Name: "list", Usage: "list all roles", ArgsUsage: " ", Action: roleList},
			{Name: "remove", Usage: "remove a role from the etcd cluster", ArgsUsage: "<role>", Action: roleRemove},
			{Name: "grant", Usage: "grant path matches to an etcd role", ArgsUsage: "<role>", Flags: permFlags("Grant", "granted"), Action: func(c *cli.Context) error { return roleGrantRevoke(c, true) }},
			{Name: "revoke", Usage: "revoke path matches for an etcd role", ArgsUsage: "<role>", Flags: revokeFlags, Action: func(c *cli.Context) error { return roleGrantRevoke(c, false) }},
		},
	}
}

func newAuthRoleAPI(c *cli.Context) (client.AuthRoleAPI, error) {
	hc, err := mustNewClient(c)
	if err != nil {
		return nil, err
	}
	if c.GlobalBool("debug") {
		fmt.Fprintf(stderr, "Cluster-Endpoints: %s\n", strings.Join(hc.Endpoints(), ", "))
	}
	return client.NewAuthRoleAPI(hc), nil
}

// roleAPIAndName checks for exactly one argument, the role name.
func roleAPIAndName(c *cli.Context) (client.AuthRoleAPI, string, error) {
	if len(c.Args()) != 1 {
		return nil, "", failf("Please provide a role name\n")
	}
	api, err := newAuthRoleAPI(c)
	if err != nil {
		return nil, "", err
	}
	return api, c.Args()[0], nil
}

func roleList(c *cli.Context) error {
	if len(c.Args()) != 0 {
		return failf("No arguments accepted\n")
	}
	api, err := newAuthRoleAPI(c)
	if err != nil {
		return err
	}
	ctx, cancel := contextWithTotalTimeout(c)
	roles, err := api.ListRoles(ctx)
	cancel()
	if err != nil {
		return failf("%s\n", err.Error())
	}
	for _, r := range roles {
		fmt.Fprintf(stdout, "%s\n", r)
	}
	return nil
}

func roleAdd(c *cli.Context) error {
	api, role, err := roleAPIAndName(c)
	if err != nil {
		return err
	}
	ctx, cancel := contextWithTotalTimeout(c)
	defer cancel()
	if current, _ := api.GetRole(ctx, role); current != nil {
		return failf("Role %s already exists\n", role)
	}
	if err := api.AddRole(ctx, role); err != nil {
		return failf("%s\n", err.Error())
	}
	fmt.Fprintf(stdout, "Role %s created\n", role)
	return nil
}

func roleRemove(c *cli.Context) error {
	api, role, err := roleAPIAndName(c)
	if err != nil {
		return err
	}
	ctx, cancel := contextWithTotalTimeout(c)
	err = api.RemoveRole(ctx, role)
	cancel()
	if err != nil {
		return failf("%s\n", err.Error())
	}
	fmt.Fprintf(stdout, "Role %s removed\n", role)
	return nil
}

// roleGrantRevoke grants or revokes one permission (--read, --write or
// --readwrite) on one canonical --path.
func roleGrantRevoke(c *cli.Context, grant bool) error {
	path := c.String("path")
	if path == "" {
		return failf("No path specified; please use `--path`\n")
	}
	if canonical := pathutil.CanonicalURLPath(path); canonical != path {
		return failf("Not canonical path; please use `--path=%s`\n", canonical)
	}
	read, write, rw := c.Bool("read"), c.Bool("write"), c.Bool("readwrite")
	permcount := 0
	for _, v := range []bool{read, write, rw} {
		if v {
			permcount++
		}
	}
	if permcount != 1 {
		return failf("Please specify exactly one of --read, --write or --readwrite\n")
	}
	var perm client.PermissionType
	switch {
	case read:
		perm = client.ReadPermission
	case write:
		perm = client.WritePermission
	case rw:
		perm = client.ReadWritePermission
	}
	api, role, err := roleAPIAndName(c)
	if err != nil {
		return err
	}
	ctx, cancel := contextWithTotalTimeout(c)
	defer cancel()
	current, err := api.GetRole(ctx, role)
	if err != nil {
		return failf("%s\n", err.Error())
	}
	var updated *client.Role
	if grant {
		updated, err = api.GrantRoleKV(ctx, role, []string{path}, perm)
	} else {
		updated, err = api.RevokeRoleKV(ctx, role, []string{path}, perm)
	}
	if err != nil {
		return failf("%s\n", err.Error())
	}
	if reflect.DeepEqual(updated, current) {
		// No newline: etcdctl prints this and the next line as one.
		if grant {
			fmt.Fprintf(stdout, "Role unchanged; already granted")
		} else {
			fmt.Fprintf(stdout, "Role unchanged; already revoked")
		}
	}
	fmt.Fprintf(stdout, "Role %s updated\n", role)
	return nil
}

func roleGet(c *cli.Context) error {
	api, name, err := roleAPIAndName(c)
	if err != nil {
		return err
	}
	ctx, cancel := contextWithTotalTimeout(c)
	role, err := api.GetRole(ctx, name)
	cancel()
	if err != nil {
		return failf("%s\n", err.Error())
	}
	fmt.Fprintf(stdout, "Role: %s\n", role.Role)
	fmt.Fprintf(stdout, "KV Read:\n")
	for _, v := range role.Permissions.KV.Read {
		fmt.Fprintf(stdout, "\t%s\n", v)
	}
	fmt.Fprintf(stdout, "KV Write:\n")
	for _, v := range role.Permissions.KV.Write {
		fmt.Fprintf(stdout, "\t%s\n", v)
	}
	return nil
}

func newAuthCommands() cli.Command {
	return cli.Command{
		Name:  "auth",
		Usage: "overall auth controls",
		Subcommands: []cli.Command{
			{Name: "enable", Usage: "enable auth access controls", ArgsUsage: " ", Action: func(c *cli.Context) error { return authEnableDisable(c, true) }},
			{Name: "disable", Usage: "disable auth access controls", ArgsUsage: " ", Action: func(c *cli.Context) error { return authEnableDisable(c, false) }},
		},
	}
}

func authEnableDisable(c *cli.Context, enable bool) error {
	if len(c.Args()) != 0 {
		return failf("No arguments accepted\n")
	}
	hc, err := mustNewClient(c)
	if err != nil {
		return err
	}
	if c.GlobalBool("debug") {
		fmt.Fprintf(stderr, "Cluster-Endpoints: %s\n", strings.Join(hc.Endpoints(), ", "))
	}
	s := client.NewAuthAPI(hc)
	ctx, cancel := contextWithTotalTimeout(c)
	if enable {
		err = s.Enable(ctx)
	} else {
		err = s.Disable(ctx)
	}
	cancel()
	if err != nil {
		return failf("%s\n", err.Error())
	}
	if enable {
		fmt.Fprintln(stdout, "Authentication Enabled")
	} else {
		fmt.Fprintln(stdout, "Authentication Disabled")
	}
	return nil
}
