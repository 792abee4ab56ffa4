internal import CMount
internal import CVeneerOS
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

// The libmount path: one context per mount, serialized (libmount is not thread-safe).

extension Mounter {
    /// One libmount context: helpers, mtab/utab, canonicalization and fstab all off.
    /// The mount is made on the opened target directory (through its descriptor path),
    /// never on the target's path resolved again.
    static func libmountMount(
        type: String?, source: String, target: MountTarget, options: String, operation: String,
        diagnose: () -> String?
    ) throws(SystemError) {
        let mountPath = target.descriptorPath
        let failure: (code: Int32, detail: String?)? = LibMount.lock.withLock { _ in
            guard let cxt = mnt_new_context() else { return (ENOMEM, "cannot allocate a libmount context") }
            defer { mnt_free_context(cxt) }
            var rc = mnt_context_disable_helpers(cxt, 1)
            if rc == 0 { rc = mnt_context_disable_mtab(cxt, 1) }
            if rc == 0 { rc = mnt_context_disable_canonicalize(cxt, 1) }
            if rc == 0 { rc = mnt_context_set_optsmode(cxt, Int32(MNT_OMODE_IGNORE | MNT_OMODE_NOTAB)) }
            if rc == 0, let type { rc = mnt_context_set_fstype(cxt, type) }
            if rc == 0 { rc = mnt_context_set_source(cxt, source) }
            if rc == 0 { rc = mnt_context_set_target(cxt, mountPath) }
            if rc == 0 { rc = mnt_context_set_options(cxt, options) }
            if rc != 0 { return (rc < 0 && -rc < 4096 ? -rc : EINVAL, "libmount rejected the mount description") }
            rc = mnt_context_mount(cxt)
            if rc == 0 { return nil }
            if mnt_context_syscall_called(cxt) == 1 {
                let code = mnt_context_get_syscall_errno(cxt)
                if code != 0 { return (code, nil) }
            }
            var buffer = [CChar](repeating: 0, count: 1024)
            _ = mnt_context_get_excode(cxt, rc, &buffer, buffer.count)
            let message = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let code: Int32 = rc > 0 && rc < 4096 ? rc : (rc < 0 && -rc < 4096 ? -rc : EINVAL)
            return (code, message.isEmpty ? nil : message)
        }
        guard let failure else { return }
        throw SystemError(operation, target.path, errno: failure.code, detail: failure.detail ?? diagnose())
    }

}
