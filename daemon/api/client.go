package api

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"
	"time"
)

// ErrDaemonDown means nothing answers on the socket.
var ErrDaemonDown = errors.New("underlayd is not running")

// Client talks to underlayd. It speaks HTTP/1.0 over a raw unix socket
// instead of using net/http: the hook runs on every container start and
// net/http alone adds several milliseconds of process start-up.
type Client struct {
	Socket  string
	Timeout time.Duration // whole request; zero means 60s
}

// StatusError is a non-2xx answer from the daemon.
type StatusError struct {
	Code int
	Msg  string
}

func (e *StatusError) Error() string { return e.Msg }

// Call sends body (if non-nil) as the JSON of the request and returns the
// body of a 2xx answer. Any other answer is a *StatusError carrying the
// daemon's message. Errors are one line, ready to print. Callers encode
// and decode themselves (wire.go for the hook and underlay-cni,
// encoding/json elsewhere through apiclient.Do) so this package does not
// link encoding/json.
func (c *Client) Call(method, path string, body []byte) ([]byte, error) {
	code, resp, err := c.roundTrip(method, "/"+Version+path, body)
	if err != nil {
		return nil, err
	}
	return answer(code, resp)
}

// answer returns the body of a 2xx answer, or the daemon's message as a
// *StatusError.
func answer(code int, resp []byte) ([]byte, error) {
	if code < 200 || code > 299 {
		e, err := decodeError(resp)
		if err != nil || e.Error == "" {
			e.Error = fmt.Sprintf("underlayd answered %d: %s", code, bytes.TrimSpace(resp))
		}
		return nil, &StatusError{Code: code, Msg: e.Error}
	}
	return resp, nil
}

func (c *Client) socket() string {
	if c.Socket == "" {
		return DefaultSocket
	}
	return c.Socket
}

func (c *Client) roundTrip(method, path string, body []byte) (int, []byte, error) {
	fd, err := c.send(method, path, body)
	if err != nil {
		return 0, nil, err
	}
	defer syscall.Close(fd)
	resp, err := readAll(fd)
	if err != nil {
		return 0, nil, fmt.Errorf("read from underlayd at %s: %w", c.socket(), err)
	}
	return parseResponse(resp)
}

// Stream sends a GET of path and returns the body of a 2xx answer as
// underlayd writes it (`underlay events`): the HTTP/1.0 answer has no
// length and ends when underlayd closes it. The timeout covers the
// answer's head, not the wait for the body. Errors are Call's.
func (c *Client) Stream(path string) (io.ReadCloser, error) {
	fd, err := c.send("GET", "/"+Version+path, nil)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "underlayd")
	r := bufio.NewReader(f)
	var head []byte
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		line, err := r.ReadSlice('\n')
		head = append(head, line...)
		if err != nil {
			f.Close()
			if len(head) == 0 {
				return nil, fmt.Errorf("read from underlayd at %s: %w", c.socket(), err)
			}
			break // parseResponse names what is missing
		}
	}
	code, _, err := parseResponse(head)
	if err == nil && (code < 200 || code > 299) {
		body, _ := io.ReadAll(r)
		f.Close()
		_, err = answer(code, body)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	var none syscall.Timeval
	_ = syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &none)
	return struct {
		io.Reader
		io.Closer
	}{r, f}, nil
}

// send connects and writes the request; the caller reads the answer from
// the returned socket and closes it.
func (c *Client) send(method, path string, body []byte) (int, error) {
	fd, err := c.dial()
	if err != nil {
		return -1, err
	}
	var req bytes.Buffer
	req.Grow(128 + len(body))
	req.WriteString(method + " " + path + " HTTP/1.0\r\nHost: underlayd\r\n")
	if body != nil {
		req.WriteString("Content-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n")
	}
	req.WriteString("\r\n")
	req.Write(body)
	if err := writeAll(fd, req.Bytes()); err != nil {
		syscall.Close(fd)
		return -1, fmt.Errorf("send to underlayd at %s: %w", c.socket(), err)
	}
	return fd, nil
}

func (c *Client) dial() (int, error) {
	sock := c.socket()
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	tv := syscall.NsecToTimeval(timeout.Nanoseconds())
	_ = syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	_ = syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_SNDTIMEO, &tv)
	if err := syscall.Connect(fd, &syscall.SockaddrUnix{Name: sock}); err != nil {
		syscall.Close(fd)
		switch {
		case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED):
			return -1, fmt.Errorf("%w (nothing listens on %s)", ErrDaemonDown, sock)
		case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
			return -1, fmt.Errorf("connect to underlayd at %s: permission denied (root or the socket's group needed)", sock)
		}
		return -1, fmt.Errorf("connect to underlayd at %s: %w", sock, err)
	}
	return fd, nil
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := syscall.Write(fd, b)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func readAll(fd int) ([]byte, error) {
	buf := make([]byte, 0, 4096)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := syscall.Read(fd, buf[len(buf):cap(buf)])
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			return nil, errors.New("timed out waiting for an answer")
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// parseResponse reads an HTTP/1.0 answer whose body runs to EOF.
func parseResponse(b []byte) (int, []byte, error) {
	if len(b) == 0 {
		return 0, nil, errors.New("underlayd closed the connection without answering (did it crash or restart?)")
	}
	head, body, ok := bytes.Cut(b, []byte("\r\n\r\n"))
	if !ok {
		return 0, nil, errors.New("malformed answer from underlayd")
	}
	line, _, _ := bytes.Cut(head, []byte("\r\n"))
	f := bytes.Fields(line)
	if len(f) < 2 {
		return 0, nil, errors.New("malformed status line from underlayd")
	}
	code, err := strconv.Atoi(string(f[1]))
	if err != nil {
		return 0, nil, errors.New("malformed status code from underlayd")
	}
	return code, body, nil
}
