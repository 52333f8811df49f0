package engine_test

import "bytes"

type bytesBuffer = bytes.Buffer
