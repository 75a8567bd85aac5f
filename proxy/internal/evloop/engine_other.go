//go:build !linux

package evloop

import (
	"context"
	"net"
	"net/netip"
	"time"
)

// Engine is the event-loop engine, Linux only.
type Engine struct{}

// New reports ErrUnsupported: the engine needs epoll.
func New(Config) (*Engine, error) { return nil, ErrUnsupported }

// Serve reports ErrUnsupported.
func (e *Engine) Serve(*net.TCPListener) error { return ErrUnsupported }

// Shutdown has nothing to stop.
func (e *Engine) Shutdown(context.Context) error { return nil }

// ExchangeIdle is 0: there are no loops.
func (e *Engine) ExchangeIdle() time.Duration { return 0 }

// Conns is 0: there are no loops.
func (e *Engine) Conns() int64 { return 0 }

// CloseIdle does nothing: there are no loops.
func (e *Engine) CloseIdle() {}

// Conn is one connection of the engine, Linux only.
type Conn struct{ data any }

// Resume does nothing off Linux.
func (c *Conn) Resume(Action) {}

// ResumeFunc does nothing off Linux.
func (c *Conn) ResumeFunc(func() Action) {}

// SetTimeout does nothing off Linux.
func (c *Conn) SetTimeout(time.Duration) {}

// RemoteAddr is the client's address.
func (c *Conn) RemoteAddr() netip.AddrPort { return netip.AddrPort{} }

// SetData attaches the handler's state to c.
func (c *Conn) SetData(v any) { c.data = v }

// Data returns what SetData attached.
func (c *Conn) Data() any { return c.data }

// Err is why reading the client failed.
func (c *Conn) Err() error { return nil }

// Phase is where c is.
func (c *Conn) Phase() Phase { return PhaseHead }
