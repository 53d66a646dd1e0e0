// Package funchost runs Cairn Functions: WebAssembly modules that serve HTTP
// requests, sandboxed by wazero.
//
// A Host owns one long-lived wazero runtime (compiler engine, on-disk
// compilation cache). Host.Load compiles a module, checks that it implements
// the reactor ABI below (or the Command ABI, see Config.ABI) and
// pre-instantiates a bounded pool of instances;
// Function.Invoke runs one request on one instance under a deadline, and
// Handler serves a Function over HTTP.
//
// # Cairn HTTP reactor ABI v1
//
// A guest is a reactor: it is instantiated once and then serves many
// requests, one at a time per instance. All pointers are offsets into the
// guest's exported memory and all lengths are in bytes; i32 values holding
// pointers or lengths are unsigned.
//
// The guest exports:
//
//	memory                                  its linear memory
//	cairn_alloc(size i32) -> i32            a pointer to size writable bytes
//	cairn_handle(ptr i32, len i32) -> i64   handles one request
//	_initialize()                           optional, called once per instance
//
// For each request the host calls cairn_alloc with the body size, writes the
// request body at the returned pointer and calls cairn_handle with that
// pointer and size. An empty body is passed as (0, 0) without calling
// cairn_alloc. cairn_handle returns (resp_ptr << 32) | resp_len: the response
// body, which the host copies out before the instance serves anything else,
// so the guest may reuse that memory on the next request.
//
// The host provides, in import module "cairn":
//
//	set_status(code i32)
//	    Response status, 200–599 (others are ignored: a reactor's response
//	    is final); 200 when never called. The last call wins.
//	set_header(name_ptr, name_len, value_ptr, value_len i32)
//	    Adds a response header value. Invalid names or values are dropped.
//	request_method(buf_ptr, buf_len i32) -> i32
//	request_path(buf_ptr, buf_len i32) -> i32
//	    Copy the request method, or path with its query ("/a?b=c"), into
//	    the buffer and return their full length. When that exceeds buf_len
//	    only the first buf_len bytes were copied: retry with a buffer of the
//	    returned size.
//	request_header(name_ptr, name_len, buf_ptr, buf_len i32) -> i32
//	    Like request_method for the values of one request header (name
//	    case-insensitive, several values joined by ", "); -1 when absent.
//	log(ptr, len i32)
//	    Writes one line to the host's log, attributed to the Function.
//
// A guest may also import wasi_snapshot_preview1 (as Go's wasip1 and most
// toolchains do). It gets real wall and monotonic clocks and a
// cryptographic random source, but no files, no arguments and only the
// environment variables the Function grants. Sleeping does not block the
// host: an instance blocked in a host call could not be stopped at its
// deadline, so guests that sleep spin instead and are bounded by the
// Function's timeout.
//
// An instance that traps, exits, or runs past its deadline is discarded and
// never serves again. Response headers count towards the response size
// limit along with the body.
//
// # Command ABI
//
// With Config.ABI set to Command, a guest is a plain WASI program (a
// wasip1 "command"): it exports memory and _start, needs no cairn_*
// exports, and may import only wasi_snapshot_preview1. It requires
// PerRequest isolation: every request instantiates a fresh instance that
// runs _start once, so no state survives between requests.
//
//	stdin    the request body
//	stdout   the response body, status 200 and no headers when the
//	         program exits with code 0 (or returns from _start). Writing
//	         more than Config.MaxResponseBytes stops the program and fails
//	         the request with ErrResponseTooLarge.
//	stderr   logged line by line, attributed to the Function; at most
//	         64 KiB per request, lines cut at 4 KiB
//	args     one: the Function's name
//	env      the variables the Function grants, plus the request's
//	         metadata, which wins over granted variables of the same name:
//	           CAIRN_METHOD         the request method
//	           CAIRN_PATH           the path with its query ("/a?b=c")
//	           CAIRN_HEADER_<NAME>  each request header, <NAME> uppercased
//	                                with '-' replaced by '_' (for example
//	                                CAIRN_HEADER_CONTENT_TYPE); several
//	                                values are joined by ", "
//
// Clocks, randomness and the absence of files are as for reactors. A
// non-zero exit code fails the request with an *ExitError (ErrExit, which
// Handler answers with 502 and a generic body; the code is only logged), a
// program still running at the deadline is stopped with ErrTimeout, and a
// trap is ErrTrap. Load checks the exports but does not run the program:
// MinInstances has no effect and MaxInstances bounds concurrent runs.
package funchost
