package evloop

import "net/netip"

// NewConnForTest returns a Conn from remote that belongs to no loop, for a
// handler's benchmarks: its RemoteAddr, SetData and Data work; Resume,
// ResumeFunc and SetTimeout must not be called.
func NewConnForTest(remote netip.AddrPort) *Conn {
	return &Conn{remote: remote, phase: PhaseHead, tidx: -1}
}
