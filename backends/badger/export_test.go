package badger

// Spills returns how many transactions Updates have spilled so far.
func Spills() int64 { return spills.Load() }
