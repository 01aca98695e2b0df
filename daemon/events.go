package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/underlay/underlay/daemon/network"
)

func startEvents(ctx context.Context, addr string, m *network.Manager, log *slog.Logger) error {
	return errors.New("--containerd-address: containerd event handling is not built yet")
}
