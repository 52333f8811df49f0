// etcd 3.5 built from its module: the second etcd release the data-dir
// import tests read (cmd/strata/import_test.go, $STRATA_ETCD35).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
