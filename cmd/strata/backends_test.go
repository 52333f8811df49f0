package main

import "github.com/strata-kv/strata/backends"

func backendNames() []string { return backends.Names() }
