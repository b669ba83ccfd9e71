//! Traffic logs (tcplog) and their syslog/stdout transports.
