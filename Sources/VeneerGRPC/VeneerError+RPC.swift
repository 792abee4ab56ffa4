import GRPCCore
import VeneerCore

/// A service error ends an RPC with the gRPC status containerd maps back to its own
/// errors (`errdefs`): the code below and the error's message. The cause stays in the
/// daemon.
extension VeneerError: RPCErrorConvertible {
    public var rpcErrorCode: RPCError.Code { code.rpcCode }
    public var rpcErrorMessage: String { message }
    public var rpcErrorCause: (any Error)? { nil }
}

extension VeneerError.Code {
    /// The gRPC status code of each service code.
    public var rpcCode: RPCError.Code {
        switch self {
        case .invalidArgument: .invalidArgument
        case .notFound: .notFound
        case .alreadyExists: .alreadyExists
        case .failedPrecondition: .failedPrecondition
        case .resourceExhausted: .resourceExhausted
        case .unavailable: .unavailable
        case .internal: .internalError
        }
    }
}
