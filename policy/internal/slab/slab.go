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
