package engine

// KeySpaceRecord reports whether a backend record (a key of a snapshot
// stream) belongs to the v2 key space: nodes, the TTL index and the store
// index. Anything else (cluster records such as the membership) describes
// the cluster the image was taken in, which a restore into a new cluster
// must leave behind.
func KeySpaceRecord(k []byte) bool {
	return len(k) > 0 && (k[0] == prefixNode || k[0] == prefixTTL || k[0] == prefixMeta)
}
