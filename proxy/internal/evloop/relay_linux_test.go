package evloop

import (
	"errors"
	"io"
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRelayDstFailed: once writing to one side fails, what the other side
// sends is read and dropped until the tunnel can end (a source left unread
// would hold it open), and the end is "error" unless the side written to
// had ended its sending before it closed (EPIPE).
func TestRelayDstFailed(t *testing.T) {
	chunk := make([]byte, 1<<10)
	// writeUntilEnd writes to w until the engine closes the tunnel: its
	// end comes only once the dropped bytes were read.
	writeUntilEnd := func(t *testing.T, h *testHandler, w io.Writer) End {
		for {
			select {
			case e := <-h.ends:
				return e
			default:
			}
			if _, err := w.Write(chunk); err != nil {
				return h.end(t) // the engine closed it
			}
		}
	}
	tests := []struct {
		name   string
		origin func(c net.Conn)
		client func(t *testing.T, h *testHandler, c *net.TCPConn) End
		reason string
		reset  bool // End.Err is a reset
	}{
		{
			// The origin's FIN reaches the client; the client's next bytes
			// meet a closed origin: EPIPE, and they are dropped.
			name:   "origin closed after its FIN",
			origin: func(c net.Conn) { io.WriteString(c, "bye") },
			client: func(t *testing.T, h *testHandler, c *net.TCPConn) End {
				if b, err := io.ReadAll(c); string(b) != "bye" || err != nil {
					t.Fatalf("client read %q, %v; want bye, then EOF", b, err)
				}
				return writeUntilEnd(t, h, c)
			},
			reason: ReasonEOF,
		},
		{
			// The mirror: the client ended, then closed while the origin
			// still sends.
			name: "client closed after its FIN",
			origin: func(c net.Conn) {
				io.ReadAll(c) // until the client's FIN
				for {
					if _, err := c.Write(chunk); err != nil {
						return // the engine closed it
					}
				}
			},
			client: func(t *testing.T, h *testHandler, c *net.TCPConn) End {
				c.CloseWrite()
				readN(t, c, 1) // the origin's bytes flow
				c.Close()      // unread bytes: a reset
				return h.end(t)
			},
			reason: ReasonEOF,
		},
		{
			// A client that resets while the origin sends: "error".
			name: "client reset",
			origin: func(c net.Conn) {
				for {
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			},
			client: func(t *testing.T, h *testHandler, c *net.TCPConn) End {
				readN(t, c, 1)
				c.SetLinger(0)
				c.Close()
				return h.end(t)
			},
			reason: ReasonError, reset: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := origin(t, tt.origin)
			h := newTestHandler()
			addr, _ := serve(t, h, Config{})
			c := dialProxy(t, addr, o, "")
			expect200(t, c)
			end := tt.client(t, h, c)
			if end.Reason != tt.reason || end.Phase != PhaseRelay {
				t.Errorf("end %+v, want %s in the relay", end, tt.reason)
			}
			if tt.reset != errors.Is(end.Err, unix.ECONNRESET) {
				t.Errorf("end error %v; a reset: %v", end.Err, tt.reset)
			}
		})
	}
}
