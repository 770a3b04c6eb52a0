# The Ruby peer of the bench: Process.daemon (fork, setsid, fork, chdir /, stdio to /dev/null), then a
# minimal HTTP server on 127.0.0.1:PORT. It writes its pid to PIDFILE (renamed into place) once listening,
# so the bench can stop exactly this process. Usage: ruby scripts/bench-daemon.rb PORT PIDFILE
require "socket"

port, pid_file = Integer(ARGV.fetch(0)), File.expand_path(ARGV.fetch(1))
Process.daemon
server = TCPServer.new("127.0.0.1", port)
File.write("#{pid_file}.tmp", "#{Process.pid}\n")
File.rename("#{pid_file}.tmp", pid_file)
loop do
  client = server.accept
  while (line = client.gets) && line != "\r\n"; end
  client.write("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
  client.close
end
