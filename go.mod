module github.com/strata-kv/strata

go 1.26.8

require (
	github.com/julienschmidt/httprouter v1.3.0
	go.etcd.io/raft/v3 v3.6.0
	golang.org/x/sys v0.49.0
)

require (
	github.com/gogo/protobuf v1.3.2 // indirect
	github.com/golang/protobuf v1.5.4 // indirect
	github.com/stretchr/testify v1.11.1 // indirect
	github.com/tidwall/btree v1.8.1 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
