package httphead

import (
	"fmt"
	"math/rand/v2"
)

// split is one way to cut a stream into reads.
type split struct {
	name   string
	chunks [][]byte
}

// splitsOf returns the ways the table tests cut in: in one read, one byte
// at a time, and in two reads at every offset.
func splitsOf(in []byte) []split {
	bytewise := make([][]byte, len(in))
	for i := range in {
		bytewise[i] = in[i : i+1]
	}
	s := []split{{"one chunk", [][]byte{in}}, {"one byte at a time", bytewise}}
	for i := 1; i < len(in); i++ {
		s = append(s, split{fmt.Sprintf("split at %d", i), [][]byte{in[:i], in[i:]}})
	}
	return s
}

// randomChunks cuts data into reads of 1 to 17 bytes, as seed says.
func randomChunks(data []byte, seed uint64) [][]byte {
	rng := rand.New(rand.NewPCG(seed, seed>>32))
	var chunks [][]byte
	for rest := data; len(rest) > 0; {
		n := 1 + rng.IntN(min(len(rest), 17))
		chunks, rest = append(chunks, rest[:n]), rest[n:]
	}
	return chunks
}
