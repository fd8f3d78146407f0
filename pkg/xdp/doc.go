package xdp
