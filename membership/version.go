package membership

// The versions a member reports (client and peer GET /version), as etcd
// 3.4.23 does
// ({"etcdserver":"3.4.23","etcdcluster":"3.4.0"}): etcdserver is the etcd
// release whose v2 API Strata serves and is checked against (its full
// version, as etcd reports its own); etcdcluster is the cluster level,
// which etcd keeps at major.minor.0. strata --version prints EtcdVersion
// on its "etcd Version:" line and the peer /version reports both.
const (
	EtcdVersion        = "3.4.23"
	EtcdClusterVersion = "3.4.0"
)
