// goclient: a small net/http program the eBPF tests hook (crypto/tls).
//
// Usage: goclient CA_PEM BASE_URL h1|h2
//
// It first waits for one line (or EOF) on stdin, so that a test can let the
// capture hook this fresh binary before the first byte. Then it makes three OpenAI chat-completions calls against the stand-in (plain,
// streamed with include_usage, and one with a large prompt), then prints one
// line per call and a JSON summary of the usage it read itself. Standard
// library only, so it builds offline with Debian's golang-go.
package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

type usage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	PromptTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
}

type chunk struct {
	Usage *usage `json:"usage"`
}

func request(client *http.Client, base string, body map[string]interface{}) (string, int, *usage, string) {
	raw, _ := json.Marshal(body)
	req, err := http.NewRequest("POST", base+"/v1/chat/completions", bytes.NewReader(raw))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer sk-goclient-test-key-0000")
	resp, err := client.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(data)
	var u *usage
	if stream, _ := body["stream"].(bool); stream {
		scanner := bufio.NewScanner(bytes.NewReader(data))
		for scanner.Scan() {
			line := scanner.Text()
			if !strings.HasPrefix(line, "data: ") || line == "data: [DONE]" {
				continue
			}
			var c chunk
			if json.Unmarshal([]byte(line[6:]), &c) == nil && c.Usage != nil {
				u = c.Usage
			}
		}
	} else {
		var c chunk
		if err := json.Unmarshal(data, &c); err != nil {
			panic(err)
		}
		u = c.Usage
	}
	return resp.Proto, resp.StatusCode, u, hex.EncodeToString(sum[:])
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: goclient CA_PEM BASE_URL h1|h2")
		os.Exit(2)
	}
	bufio.NewReader(os.Stdin).ReadString('\n')
	pem, err := os.ReadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	if os.Args[3] == "h2" {
		transport.ForceAttemptHTTP2 = true
	} else {
		// A non-nil empty map turns HTTP/2 off: ALPN offers http/1.1 only.
		transport.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	client := &http.Client{Transport: transport}
	msg := func(text string) []map[string]string {
		return []map[string]string{{"role": "user", "content": text}}
	}
	calls := []map[string]interface{}{
		{"model": "gpt-4o-mini", "messages": msg("Say hello to the Go client"), "max_tokens": 12},
		{"model": "gpt-4o-mini", "messages": msg("Count to five slowly please"), "max_tokens": 20,
			"stream": true, "stream_options": map[string]bool{"include_usage": true}},
		{"model": "gpt-4o-mini", "messages": msg(strings.Repeat("lorem ipsum dolor sit amet ", 3000)),
			"max_tokens": 30},
	}
	total := map[string]int{"input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0,
		"reasoning_tokens": 0}
	for i, body := range calls {
		proto, status, u, digest := request(client, os.Args[2], body)
		if u == nil {
			fmt.Printf("call %d %s %d no-usage %s\n", i, proto, status, digest)
			os.Exit(1)
		}
		fmt.Printf("call %d %s %d %d %d %s\n", i, proto, status, u.PromptTokens, u.CompletionTokens, digest)
		total["input_tokens"] += u.PromptTokens
		total["output_tokens"] += u.CompletionTokens
		total["cache_read_tokens"] += u.PromptTokensDetails.CachedTokens
		total["reasoning_tokens"] += u.CompletionTokensDetails.ReasoningTokens
	}
	transport.CloseIdleConnections()
	out, _ := json.Marshal(map[string]interface{}{"calls": len(calls), "usage": total})
	fmt.Println(string(out))
}
