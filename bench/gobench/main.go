// gobench: the Go crypto/tls client of bench/overhead_go.py.
//
// It speaks the protocol of bench/overhead.py's Python client (JSON commands on
// stdin, one JSON answer per line on stdout) against the same server, so the
// Go arm measures (*tls.Conn).Write and (*tls.Conn).Read exactly as the
// OpenSSL arm measures SSL_write and SSL_read. Standard library only.
//
// Usage: gobench TLS_PORT CTL_PORT CA_PEM
package main

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

const (
	record     = 16384
	batchCalls = 2000
	readBytes  = 4 << 20
	writeBytes = 8 << 20
	fionread   = 0x541B
	tiocoutq   = 0x5411
)

type client struct {
	cfg   *tls.Config
	port  string
	ctl   net.Conn
	ctlIn *bufio.Reader
	conns map[string]*tls.Conn
	raws  map[string]*net.TCPConn
	buf   []byte
}

func calls(kind string, size int) int {
	limit := readBytes / minInt(size, record)
	if kind == "write" {
		limit = writeBytes / size
	}
	return minInt(batchCalls, limit)
}

func minInt(a, b int) int {
	if a < b {
		return a
	}
	return b
}

func ioctlInt(raw *net.TCPConn, request uintptr) int {
	sc, err := raw.SyscallConn()
	if err != nil {
		panic(err)
	}
	var n int32
	sc.Control(func(fd uintptr) {
		syscall.Syscall(syscall.SYS_IOCTL, fd, request, uintptr(unsafe.Pointer(&n)))
	})
	return int(n)
}

func (c *client) open(name string) {
	raw, err := net.Dial("tcp", "127.0.0.1:"+c.port)
	if err != nil {
		panic(err)
	}
	tcp := raw.(*net.TCPConn)
	tcp.SetNoDelay(true)
	tcp.SetReadBuffer(32 << 20)
	tcp.SetWriteBuffer(32 << 20)
	conn := tls.Client(tcp, c.cfg)
	fmt.Fprintf(conn, "GET /health?conn=%s HTTP/1.1\r\nHost: files.example.com\r\n\r\n", name)
	reply := ""
	tmp := make([]byte, 4096)
	for !strings.HasSuffix(reply, "ok") {
		n, err := conn.Read(tmp)
		if err != nil {
			panic(err)
		}
		reply += string(tmp[:n])
	}
	c.conns[name], c.raws[name] = conn, tcp
}

func (c *client) fill(name string, records, size int) int {
	cmd, _ := json.Marshal(map[string]interface{}{"conn": name, "records": records, "size": size})
	c.ctl.Write(append(cmd, '\n'))
	line, err := c.ctlIn.ReadString('\n')
	if err != nil {
		panic(err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(line))
	return n
}

func (c *client) writeBatch(size int) float64 {
	name := fmt.Sprintf("sink-%d", size)
	conn, n := c.conns[name], calls("write", size)
	data := make([]byte, size)
	rand.Read(data)
	for ioctlInt(c.raws[name], tiocoutq) > 0 { // start each batch with an empty queue
		time.Sleep(500 * time.Microsecond)
	}
	t0 := time.Now()
	for i := 0; i < n; i++ {
		if _, err := conn.Write(data); err != nil {
			panic(err)
		}
	}
	return float64(time.Since(t0).Nanoseconds()) / float64(n)
}

func (c *client) readBatch(size int) float64 {
	name := fmt.Sprintf("src-%d", size)
	n, rec := calls("read", size), minInt(size, record)
	wire := c.fill(name, n, rec)
	deadline := time.Now().Add(10 * time.Second)
	for ioctlInt(c.raws[name], fionread) < wire { // all of it already here
		if time.Now().After(deadline) {
			panic("server data did not arrive")
		}
		time.Sleep(500 * time.Microsecond)
	}
	conn, buf := c.conns[name], c.buf[:size]
	t0 := time.Now()
	for i := 0; i < n; i++ {
		if _, err := conn.Read(buf); err != nil { // one record already buffered
			panic(err)
		}
	}
	return float64(time.Since(t0).Nanoseconds()) / float64(n)
}

func (c *client) bulk(mib int) float64 {
	total := mib << 20
	c.fill("src-bulk", total/record, record)
	conn, buf, got := c.conns["src-bulk"], c.buf[:record], 0
	t0 := time.Now()
	for got < total {
		n, err := conn.Read(buf)
		if err != nil {
			panic(err)
		}
		got += n
	}
	return float64(mib) / time.Since(t0).Seconds()
}

func main() {
	pem, err := os.ReadFile(os.Args[3])
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	ctl, err := net.Dial("tcp", "127.0.0.1:"+os.Args[2])
	if err != nil {
		panic(err)
	}
	c := &client{
		cfg:  &tls.Config{RootCAs: pool, ServerName: "localhost"},
		port: os.Args[1], ctl: ctl, ctlIn: bufio.NewReader(ctl),
		conns: map[string]*tls.Conn{}, raws: map[string]*net.TCPConn{},
		buf: make([]byte, 262144),
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	for in.Scan() {
		var cmd struct {
			Op      string   `json:"op"`
			Names   []string `json:"names"`
			Work    []string `json:"work"`
			Batches int      `json:"batches"`
			BulkMib int      `json:"bulk_mib"`
		}
		if err := json.Unmarshal(in.Bytes(), &cmd); err != nil {
			panic(err)
		}
		var out interface{}
		switch cmd.Op {
		case "ping":
			out = "go"
		case "open":
			for _, name := range cmd.Names {
				c.open(name)
			}
			out = len(c.conns)
		case "run":
			debug.SetGCPercent(-1)
			res := map[string][]float64{}
			for _, work := range cmd.Work {
				fields := strings.Fields(work)
				size, _ := strconv.Atoi(fields[1])
				for b := 0; b < cmd.Batches; b++ {
					if fields[0] == "write" {
						res[work] = append(res[work], c.writeBatch(size))
					} else {
						res[work] = append(res[work], c.readBatch(size))
					}
				}
			}
			res["bulk MiB/s"] = []float64{c.bulk(cmd.BulkMib)}
			debug.SetGCPercent(100)
			out = res
		}
		line, _ := json.Marshal(out)
		fmt.Println(string(line))
	}
}
