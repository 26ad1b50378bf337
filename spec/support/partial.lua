--- The partial-I/O injector as the specs see it (spec/support/partial_io.c,
-- make check-partial, which sets LEPOLL_PARTIAL_IO): there every
-- stream-socket read or write moves a byte or a few, so a test that moves
-- megabytes would make millions of syscalls on each side. A bulk test
-- takes its volume from bulk(); a test whose premise is "more than the
-- kernel buffers" gets it from small SO_SNDBUF/SO_RCVBUF, not from volume.
local M = {}

--- Whether this process runs under the injector.
M.ON = os.getenv("LEPOLL_PARTIAL_IO") ~= nil

--- The volume of a bulk test: n, or small under the injector (small must
-- still hold the test's premise: more than a high-water mark, more than
-- the socket buffers the test sets).
function M.bulk(n, small)
  if M.ON then return small end
  return n
end

return M
