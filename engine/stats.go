package engine

import "sync/atomic"

// StoreStats are the counters of /v2/stats/store, field for field etcd's.
type StoreStats struct {
	GetSuccess              uint64 `json:"getsSuccess"`
	GetFail                 uint64 `json:"getsFail"`
	SetSuccess              uint64 `json:"setsSuccess"`
	SetFail                 uint64 `json:"setsFail"`
	DeleteSuccess           uint64 `json:"deleteSuccess"`
	DeleteFail              uint64 `json:"deleteFail"`
	UpdateSuccess           uint64 `json:"updateSuccess"`
	UpdateFail              uint64 `json:"updateFail"`
	CreateSuccess           uint64 `json:"createSuccess"`
	CreateFail              uint64 `json:"createFail"`
	CompareAndSwapSuccess   uint64 `json:"compareAndSwapSuccess"`
	CompareAndSwapFail      uint64 `json:"compareAndSwapFail"`
	CompareAndDeleteSuccess uint64 `json:"compareAndDeleteSuccess"`
	CompareAndDeleteFail    uint64 `json:"compareAndDeleteFail"`
	ExpireCount             uint64 `json:"expireCount"`
	Watchers                uint64 `json:"watchers"`
}

// counters are indexed by Op: [op][0] successes, [op][1] failures.
type counters struct {
	ops           [opMax][2]atomic.Uint64
	getOK, getErr atomic.Uint64
}

func (c *counters) op(o Op, failed bool) {
	i := 0
	if failed {
		i = 1
	}
	if o < opMax {
		c.ops[o][i].Add(1)
	}
}

func (c *counters) snapshot() StoreStats {
	g := func(o Op, i int) uint64 { return c.ops[o][i].Load() }
	return StoreStats{
		GetSuccess: c.getOK.Load(), GetFail: c.getErr.Load(),
		SetSuccess: g(OpSet, 0), SetFail: g(OpSet, 1),
		DeleteSuccess: g(OpDelete, 0), DeleteFail: g(OpDelete, 1),
		UpdateSuccess: g(OpUpdate, 0), UpdateFail: g(OpUpdate, 1),
		CreateSuccess: g(OpCreate, 0), CreateFail: g(OpCreate, 1),
		CompareAndSwapSuccess: g(OpCAS, 0), CompareAndSwapFail: g(OpCAS, 1),
		CompareAndDeleteSuccess: g(OpCAD, 0), CompareAndDeleteFail: g(OpCAD, 1),
		ExpireCount: g(OpExpire, 0),
	}
}
