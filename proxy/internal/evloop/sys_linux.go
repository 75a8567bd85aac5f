package evloop

import (
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The loops' socket calls, made as raw system calls.
//
// x/sys/unix makes each call through syscall.Syscall, which tells the Go
// scheduler that the goroutine may block: entersyscall before and
// exitsyscall after, and while the call lasts the runtime's monitor may
// take the loop's P away and start another thread to run it. Every socket
// here is non-blocking, so none of these calls waits; the bookkeeping
// cost about 60 ns a call, 30-odd calls a tunnel, and a connect on
// loopback (which runs the handshake in the caller) was long enough for
// the monitor to hand the P off. RawSyscall skips both. Only calls that
// cannot block belong here: never a read of a blocking fd, never a close
// that lingers (SO_LINGER with a time).

// errno turns a raw call's error number into the error x/sys/unix would
// have returned: nil for 0, and the same comparable unix.Errno otherwise.
func errno(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

func read(fd int, b []byte) (int, error) {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	for {
		n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(p), uintptr(len(b)))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return -1, e
		}
		return int(n), nil
	}
}

// write sends b on the socket fd without raising SIGPIPE.
func write(fd int, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
			unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(n), nil
	}
}

// closeFD closes a socket or pipe the loop owns. Linux releases the fd
// even when close reports an error, so the error is of no use here.
func closeFD(fd int) {
	unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
}

func shutdown(fd, how int) error {
	_, _, e := unix.RawSyscall(unix.SYS_SHUTDOWN, uintptr(fd), uintptr(how), 0)
	return errno(e)
}

func setsockoptInt(fd, level, opt, v int) error {
	iv := int32(v)
	_, _, e := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&iv)), 4, 0)
	return errno(e)
}

func getsockoptInt(fd, level, opt int) (int, error) {
	var v int32
	l := uint32(4)
	_, _, e := unix.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&v)), uintptr(unsafe.Pointer(&l)), 0)
	return int(v), errno(e)
}

func socket(family, typ int) (int, error) {
	fd, _, e := unix.RawSyscall(unix.SYS_SOCKET, uintptr(family), uintptr(typ), 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

// connectRaw starts a connect of the non-blocking socket fd to ap, an
// address of fd's family (IPv4 unmapped).
func connectRaw(fd int, ap netip.AddrPort) error {
	var sa unix.RawSockaddrInet6 // the larger of the two
	var n uintptr
	a := ap.Addr()
	port := ap.Port()
	if a.Is4() {
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa))
		s4.Family = unix.AF_INET
		s4.Addr = a.As4()
		n = unix.SizeofSockaddrInet4
	} else {
		sa.Family = unix.AF_INET6
		sa.Addr = a.As16()
		n = unix.SizeofSockaddrInet6
	}
	// Port is in network byte order in both layouts, at the same offset.
	pp := (*[2]byte)(unsafe.Pointer(&sa.Port))
	pp[0], pp[1] = byte(port>>8), byte(port)
	for {
		_, _, e := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa)), n)
		if e != unix.EINTR {
			return errno(e)
		}
	}
}

// accept4 takes one connection from the listener fd, non-blocking and
// close-on-exec, with its peer's address.
func accept4(fd int) (int, netip.AddrPort, error) {
	var sa unix.RawSockaddrAny
	l := uint32(unix.SizeofSockaddrAny)
	nfd, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&l)),
		unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, netip.AddrPort{}, e
	}
	return int(nfd), rawAddrPort(&sa), nil
}

// rawAddrPort reads an IPv4 or IPv6 socket address; IPv4-mapped IPv6
// addresses come out as IPv4.
func rawAddrPort(sa *unix.RawSockaddrAny) netip.AddrPort {
	switch sa.Addr.Family {
	case unix.AF_INET:
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		pp := (*[2]byte)(unsafe.Pointer(&s4.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(s4.Addr), uint16(pp[0])<<8|uint16(pp[1]))
	case unix.AF_INET6:
		s6 := (*unix.RawSockaddrInet6)(unsafe.Pointer(sa))
		pp := (*[2]byte)(unsafe.Pointer(&s6.Port))
		return netip.AddrPortFrom(netip.AddrFrom16(s6.Addr).Unmap(), uint16(pp[0])<<8|uint16(pp[1]))
	}
	return netip.AddrPort{}
}
