import Glibc

/// Crash-safe file writes: what a caller was told is written survives a crash or power loss at any moment.
public enum DurableFile {
    /// Replaces the file at `path` with `bytes` so that a crash at any moment leaves either the old or the new
    /// content, never a torn mix: the bytes go to `<path>.tmp`, which is fsynced, renamed over `path`, and the
    /// directory is fsynced (unless `syncDirectory` is false) so the rename itself is on disk.
    public static func replace(
        _ path: String, with bytes: [UInt8], mode: mode_t = 0o600, syncDirectory sync: Bool = true
    ) throws(AgentError) {
        let temporary = "\(path).tmp"
        let fd = try createFresh(temporary, mode: mode)
        do throws(AgentError) {
            try writeAll(fd, bytes, path: temporary)
            guard fsync(fd) == 0 else { throw failure("syncing \(temporary)") }
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        close(fd)
        guard rename(temporary, path) == 0 else { throw failure("replacing \(path)") }
        if sync { syncDirectory(containing: path) }
    }

    /// Creates `path` as a new file for writing. O_EXCL and O_NOFOLLOW: never through a symbolic link planted at
    /// the path (the agent runs as root; following one would overwrite any file of the system), never into an
    /// existing file. Whatever is there (a temporary file a crash left, or a planted link) is unlinked first,
    /// which removes a link itself, not its target.
    static func createFresh(_ path: String, mode: mode_t) throws(AgentError) -> Int32 {
        let flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC
        var fd = open(path, flags, mode)
        if fd < 0 && errno == EEXIST {
            guard unlink(path) == 0 || errno == ENOENT else { throw failure("removing the stale \(path)") }
            fd = open(path, flags, mode)
        }
        guard fd >= 0 else { throw failure("creating \(path)") }
        return fd
    }

    /// Writes all of `bytes` at the descriptor's offset, retrying short writes and EINTR.
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(AgentError) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                throw failure("writing \(path)")
            }
            offset += written
        }
    }

    /// Fsyncs the directory holding `path`, which makes a rename or a newly created file's name durable.
    /// Best effort: some filesystems refuse fsync on directories, and the data itself is already synced.
    public static func syncDirectory(containing path: String) {
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        let fd = open(directory.isEmpty ? "/" : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }

    /// The whole file, or nil when it does not exist.
    public static func read(_ path: String) throws(AgentError) -> [UInt8]? {
        // A state file is never a link: one planted there is refused rather than followed.
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw failure("opening \(path)")
        }
        defer { close(fd) }
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw failure("reading \(path)")
            }
            if n == 0 { return result }
            result.append(contentsOf: buffer[0..<n])
        }
    }

    /// An internal error naming what failed and the errno text.
    public static func failure(_ what: String) -> AgentError {
        AgentError.internal("\(what): \(String(cString: strerror(errno)))")
    }
}
