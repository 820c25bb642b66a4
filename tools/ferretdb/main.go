// Command ferretdb runs an embedded FerretDB v1 (MongoDB wire protocol) on the
// SQLite backend (the default) or on PostgreSQL (--postgresql-url) for
// flatline's local runs and tests.
//
// Why this wrapper: `go install github.com/FerretDB/FerretDB/cmd/ferretdb`
// builds but panics at start (its build/version/version.txt is generated and
// absent from the module zip). The embeddable package has no such check.
//
// Contract:
//   - prints exactly one line "ferretdb ready <host:port>" to stdout once the
//     listener accepts TCP connections (checked by dialing it);
//   - FerretDB's own logs go to stderr;
//   - SIGTERM/SIGINT shut it down cleanly (exit 0);
//   - telemetry: the embeddable package never starts the telemetry reporter and
//     explicitly disables and locks telemetry in its state; nothing here
//     reaches the network except the listener.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

const usage = `Usage: ferretdb [flags]

Runs FerretDB v1 (embedded) as a local MongoDB-compatible server: on SQLite
files in --state-dir, or on PostgreSQL with --postgresql-url.
Prints "ferretdb ready <host:port>" on stdout once it accepts connections.
Logs go to stderr. SIGTERM or SIGINT stops it (exit 0).

Flags:
`

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("ferretdb", flag.ContinueOnError)
	listenAddr := fs.String("listen-addr", "127.0.0.1:27017", "TCP `host:port` to listen on (port 0 picks a free port)")
	stateDir := fs.String("state-dir", "./ferretdb-state", "`dir`ectory for the SQLite databases (created if missing)")
	logLevel := fs.String("log-level", "info", "log `level`: debug, info, warn or error")
	debugAddr := fs.String("debug-addr", "", "TCP `host:port` for Go's profiler (/debug/pprof/; port 0 picks a free port; empty: off); its address is logged to stderr")
	postgresqlURL := fs.String("postgresql-url", "", "PostgreSQL connection `url` (postgres://host:port/database): use the postgresql backend instead of SQLite; --state-dir is then unused")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.VisitAll(func(f *flag.Flag) {
			name, help := flag.UnquoteUsage(f)
			fmt.Fprintf(fs.Output(), "  --%s %s\n    \t%s (default %q)\n", f.Name, name, help, f.DefValue)
		})
		fmt.Fprintf(fs.Output(), "  --help\n    \tthis help\n")
	}

	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "ferretdb: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		fs.Usage()
		return 2
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: invalid --log-level %q: %s\n", *logLevel, err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	config := &ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: *listenAddr},
		Logger:   logger,
	}
	if *postgresqlURL != "" {
		// Checked here so that a typo is a clear flag error (exit 2), not a
		// connection failure; FerretDB connects lazily and checks the rest.
		u, parseErr := url.Parse(*postgresqlURL)
		if parseErr != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
			fmt.Fprintf(os.Stderr, "ferretdb: invalid --postgresql-url %q: expected postgres://host:port/database\n", *postgresqlURL)
			return 2
		}
		config.Handler = "postgresql"
		config.PostgreSQLURL = *postgresqlURL
	} else {
		dir, absErr := filepath.Abs(*stateDir)
		if absErr != nil {
			fmt.Fprintf(os.Stderr, "ferretdb: --state-dir: %s\n", absErr)
			return 1
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			fmt.Fprintf(os.Stderr, "ferretdb: --state-dir: %s\n", err)
			return 1
		}
		// The SQLite backend wants a file: URI whose path is an existing directory
		// ending with "/"; url.URL escapes spaces and the like.
		config.Handler = "sqlite"
		config.SQLiteURL = (&url.URL{Scheme: "file", Path: filepath.ToSlash(dir) + "/"}).String()
	}

	if *debugAddr != "" {
		if err := serveDebug(*debugAddr); err != nil {
			fmt.Fprintf(os.Stderr, "ferretdb: --debug-addr: %s\n", err)
			return 1
		}
	}

	f, err := ferretdb.New(config)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: %s\n", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()

	// The listener is bound by New; MongoDBURI reports the real address (also
	// when port 0 was asked for). Announce readiness only once a dial succeeds.
	u, err := url.Parse(f.MongoDBURI())
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: %s\n", err)
		stop()
		<-done
		return 1
	}
	addr := u.Host

	// Listening on all interfaces: dial and announce loopback, which clients can use.
	if host, port, splitErr := net.SplitHostPort(addr); splitErr == nil {
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
			// Go reports "[::]" for "0.0.0.0" and ":port" (dual-stack socket);
			// use ::1 only when IPv6 was asked for explicitly.
			loopback := "127.0.0.1"
			if reqHost, _, _ := net.SplitHostPort(*listenAddr); strings.Contains(reqHost, ":") {
				loopback = "::1"
			}
			addr = net.JoinHostPort(loopback, port)
		}
	}

	ready := false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; {
		c, dialErr := net.DialTimeout("tcp", addr, time.Second)
		if dialErr == nil {
			_ = c.Close()
			ready = true
			break
		}
		time.Sleep(50 * time.Millisecond)
	}

	switch {
	case ready:
		fmt.Printf("ferretdb ready %s\n", addr)
	case ctx.Err() == nil:
		fmt.Fprintf(os.Stderr, "ferretdb: %s does not accept connections after 30s\n", addr)
		stop()
		<-done
		return 1
	}

	<-ctx.Done()
	stop() // a second signal now kills the process the default way
	logger.Info("ferretdb: signal received, shutting down")

	select {
	case err = <-done:
	case <-time.After(15 * time.Second):
		fmt.Fprintln(os.Stderr, "ferretdb: shutdown took longer than 15s, exiting anyway")
		return 1
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: %s\n", err)
		return 1
	}
	return 0
}

// serveDebug serves Go's profiler (net/http/pprof) on addr and logs
// "ferretdb debug http://<addr>/debug/pprof/" to stderr: CPU profiles of
// FerretDB under load (go tool pprof http://<addr>/debug/pprof/profile).
func serveDebug(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	fmt.Fprintf(os.Stderr, "ferretdb debug http://%s/debug/pprof/\n", ln.Addr())
	go func() { _ = http.Serve(ln, mux) }() //nolint:gosec // loopback profiler, no timeouts needed
	return nil
}
