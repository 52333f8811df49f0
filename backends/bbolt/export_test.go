package bbolt

// CommitsSynced reports whether the open file fdatasyncs every commit.
func CommitsSynced(b *Backend) bool { return !b.db.Load().NoSync }
