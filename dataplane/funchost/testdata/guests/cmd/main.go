// Command cmd is a test guest for the WASI command ABI: it answers
// "<CAIRN_METHOD> <CAIRN_PATH>: <stdin uppercased>".
package main

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// runs would count runs if an instance served more than one request.
var runs int

func main() {
	runs++
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "reading stdin:", err)
		os.Exit(1)
	}
	switch string(in) {
	case "fail":
		fmt.Fprintln(os.Stderr, "failing on purpose")
		os.Exit(3)
	case "loop":
		for {
			runs++
		}
	case "big":
		chunk := strings.Repeat("x", 1<<10)
		for range 2 << 10 {
			if _, err := os.Stdout.WriteString(chunk); err != nil {
				os.Exit(4)
			}
		}
		return
	case "count":
		fmt.Printf("runs %d", runs)
		return
	case "env":
		fmt.Print(strings.Join(os.Environ(), "\n"), "\nargs ", strings.Join(os.Args, " "))
		return
	}
	fmt.Printf("%s %s: %s", os.Getenv("CAIRN_METHOD"), os.Getenv("CAIRN_PATH"), strings.ToUpper(string(in)))
}
