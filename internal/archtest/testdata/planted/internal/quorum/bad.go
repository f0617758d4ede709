package quorum

import "sync"

var mu sync.Mutex
