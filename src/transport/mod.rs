//! I/O at the edge: io_uring worker loop per core, epoll fallback.
