// Package funchost runs Cairn Functions: WebAssembly modules that serve HTTP
// requests, sandboxed by wazero.
//
// A Host owns one long-lived wazero runtime (compiler engine, on-disk
// compilation cache). Host.Load compiles a module, checks that it implements
// the reactor ABI below and pre-instantiates a bounded pool of instances;
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
package funchost
