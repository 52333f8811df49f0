package engine

// Event actions, as etcd names them in the "action" field.
const (
	ActionGet              = "get"
	ActionCreate           = "create"
	ActionSet              = "set"
	ActionUpdate           = "update"
	ActionDelete           = "delete"
	ActionCompareAndSwap   = "compareAndSwap"
	ActionCompareAndDelete = "compareAndDelete"
	ActionExpire           = "expire"
)

// Event is the answer to a request and what watchers receive. Its JSON form
// is etcd's: {"action":...,"node":{...},"prevNode":{...}}.
type Event struct {
	Action   string `json:"action"`
	Node     *Node  `json:"node,omitempty"`
	PrevNode *Node  `json:"prevNode,omitempty"`

	// EtcdIndex is the store index the answer reflects (X-Etcd-Index).
	EtcdIndex uint64 `json:"-"`
	// Refresh marks a TTL refresh: kept in history, never sent to watchers.
	Refresh bool `json:"-"`

	// removed lists every node a delete or expiry of a directory removed,
	// so that watchers on those paths are told too.
	removed []string
}

// Index is the store index at which the event happened.
func (e *Event) Index() uint64 { return e.Node.ModifiedIndex }

// IsCreated reports whether the event made a new node (HTTP 201).
func (e *Event) IsCreated() bool {
	return e.Action == ActionCreate || (e.Action == ActionSet && e.PrevNode == nil)
}

// Result is the outcome of applying one command: an event or an error.
// Err is an *Error for request failures that etcd reports in the API.
type Result struct {
	Event *Event
	Err   error
}
