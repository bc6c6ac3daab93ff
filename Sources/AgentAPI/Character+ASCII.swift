extension Character {
    /// 0 to 9 only: not the other digits Unicode knows, which `isNumber` and `wholeNumberValue` accept.
    public var isASCIIDigit: Bool { isASCII && isNumber }
}
