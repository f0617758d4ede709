package peer

import "github.com/chorus-project/chorus/internal/quorum"

var _ = quorum.X
