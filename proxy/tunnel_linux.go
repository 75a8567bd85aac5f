package proxy

import (
	"io"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// prepareSplice reports whether both conns are TCP, so copySplice can be used.
func (t *tunnel) prepareSplice() bool {
	_, ok1 := t.client.(*net.TCPConn)
	_, ok2 := t.upstream.(*net.TCPConn)
	return ok1 && ok2
}

// ackProbe returns a function reporting tcpi_bytes_acked of c's socket, the
// number of bytes c's peer has acknowledged, or nil if c has no socket. It
// looks through wrappers such as *tls.Conn that expose NetConn.
func ackProbe(c net.Conn) func() (uint64, bool) {
	for {
		w, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = w.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return func() (acked uint64, ok bool) {
		rc.Control(func(fd uintptr) {
			// Fails on non-TCP sockets, which then report false.
			info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
			if err == nil {
				acked, ok = info.Bytes_acked, true
			}
		})
		return acked, ok
	}
}

// copySplice copies d.src to d.dst, both *net.TCPConn, with splice(2) until
// d.src reaches EOF, which it propagates with halfClose, or an error.
//
// Go's io.Copy between TCP conns takes a pipe from a pool before it waits for
// data and keeps it while blocked, so an idle direction holds two fds.
// copySplice instead waits for readability through the runtime poller without
// a pipe, asks the kernel how many bytes are queued (SIOCINQ), and moves
// exactly that many with (*net.TCPConn).ReadFrom on an io.LimitedReader, which
// splices through a pooled pipe and cannot block on the read side.
func (t *tunnel) copySplice(d *direction) error {
	dst := d.dst.(*net.TCPConn)
	src := d.src.(*net.TCPConn)
	rc, err := src.SyscallConn()
	if err != nil {
		return err
	}

	// State set by wait; allocated once per direction, not per chunk.
	var (
		queued  int   // bytes queued on src, if > 0
		eof     bool  // src reached EOF
		waitErr error // pending socket error on src
		peek    [1]byte
	)
	wait := func(fd uintptr) bool {
		queued, eof, waitErr = 0, false, nil
		n, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		if err != nil {
			waitErr = os.NewSyscallError("ioctl", err)
			return true
		}
		if n > 0 {
			queued = n
			return true
		}
		// Nothing queued: not yet readable, EOF, or an error. A peek tells them
		// apart without consuming anything.
		for {
			m, _, err := unix.Recvfrom(int(fd), peek[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				return false // the poller parks us until src is readable
			case err != nil:
				waitErr = os.NewSyscallError("recvfrom", err)
			case m == 0:
				eof = true
			}
			// m > 0 with queued == 0: data arrived after the ioctl, or an
			// urgent mark is at the head of the queue (SIOCINQ counts only
			// up to it). The caller copies one buffer the ordinary way.
			return true
		}
	}

	lr := &io.LimitedReader{R: src}
	var small []byte // for the rare queued == 0 case
	for {
		if err := rc.Read(wait); err != nil {
			return err
		}
		switch {
		case waitErr != nil:
			return waitErr
		case eof:
			return t.halfClose(d)
		}

		d.busy.Store(true)
		t.touch()
		var n int64
		if queued > 0 {
			lr.N = int64(queued)
			n, err = dst.ReadFrom(lr)
		} else {
			if small == nil {
				small = make([]byte, 4<<10)
			}
			var nr int
			nr, err = src.Read(small)
			if nr > 0 {
				var nw int
				nw, err = dst.Write(small[:nr])
				n = int64(nw)
			}
			if err == io.EOF {
				err = nil // the next wait sees it too and half-closes
			}
		}
		d.n.Add(n)
		t.touch()
		d.busy.Store(false)
		if err != nil {
			return err
		}
	}
}
