// Package slab hands out values from shared backing arrays, one
// allocation per Size values instead of one each. The values live as long
// as any of them does, which suits the parts of one policy: the fast
// parser's attributes and literals, the compiler's ranges and strings.
// It imports nothing of the module.
package slab

// Size is how many values one backing array holds.
const Size = 256

// Of hands out values of type T. The zero value is ready to use.
type Of[T any] struct{ buf []T }

// New returns a pointer to a zero value.
func (s *Of[T]) New() *T {
	if len(s.buf) == 0 {
		s.buf = make([]T, Size)
	}
	p := &s.buf[0]
	s.buf = s.buf[1:]
	return p
}

// Slice returns a slice of n zero values with capacity n.
func (s *Of[T]) Slice(n int) []T {
	if n > Size/4 {
		return make([]T, n)
	}
	if len(s.buf) < n {
		s.buf = make([]T, Size)
	}
	r := s.buf[:n:n]
	s.buf = s.buf[n:]
	return r
}
