//go:build !linux

package proxy

const inheritKeepAlive = false

func setListenerKeepAlive(int) error { return nil }
