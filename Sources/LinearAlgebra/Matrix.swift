/// A dense row-major matrix `[rows × columns]`.
///
/// Weights follow the PyTorch `nn.Linear` convention: a projection from `n` inputs to `m` outputs is
/// stored `[m × n]`, so `y = W x`.
public struct Matrix<Scalar: Sendable & Equatable>: Sendable, Equatable {
    public let rows: Int
    public let columns: Int
    /// Row-major elements, `rows * columns` of them.
    public var storage: [Scalar]

    public init(rows: Int, columns: Int, storage: [Scalar]) {
        precondition(rows >= 0 && columns >= 0, "matrix dimensions must be non-negative")
        precondition(storage.count == rows * columns,
                     "storage has \(storage.count) elements, [\(rows) × \(columns)] needs \(rows * columns)")
        self.rows = rows
        self.columns = columns
        self.storage = storage
    }

    public init(rows: Int, columns: Int, repeating value: Scalar) {
        self.init(rows: rows, columns: columns, storage: Array(repeating: value, count: rows * columns))
    }

    public var count: Int { rows * columns }
    public var shape: [Int] { [rows, columns] }

    public subscript(row: Int, column: Int) -> Scalar {
        get { storage[row * columns + column] }
        set { storage[row * columns + column] = newValue }
    }

    /// Aᵀ `[columns × rows]` (a copy; for setup work, not hot paths).
    public func transposed() -> Matrix {
        var storage = storage
        for i in 0..<rows { for j in 0..<columns { storage[j * rows + i] = self.storage[i * columns + j] } }
        return Matrix(rows: columns, columns: rows, storage: storage)
    }

    /// One row as an array (for tests and small lookups; hot paths use the storage directly).
    public func row(_ index: Int) -> [Scalar] {
        Array(storage[(index * columns)..<((index + 1) * columns)])
    }
}

extension Matrix where Scalar: Numeric {
    public static func zeros(rows: Int, columns: Int) -> Matrix {
        Matrix(rows: rows, columns: columns, repeating: 0)
    }
}

extension Matrix: CustomStringConvertible {
    public var description: String { "Matrix<\(Scalar.self)>[\(rows) × \(columns)]" }
}
