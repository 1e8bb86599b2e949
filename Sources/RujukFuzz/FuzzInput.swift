/// How a fuzz input becomes an RRP message: its frames, separated by the byte 0xFF.
///
/// 0xFF never occurs in UTF-8, so no header, command or well-formed JSON body contains it, and
/// the corpus files stay readable (`RRP/2ÿREFERÿ{...}`). Splitting and joining at one byte lets
/// the fuzzer add, drop and reorder frames with its ordinary mutations, and reach every
/// command's body decoder. Every other byte value, NUL and invalid UTF-8 included, can appear
/// inside a frame. An empty input is one empty frame.
///
/// An input of one frame cannot be an RRP message (the decoder refuses it at once); it stands for
/// the plaintext of a sealed referral body, which the recipient's adapter decodes after opening
/// the seal (`Sealer`): a sender agency, not the broker, chooses those bytes.
enum FuzzInput {
    static let separator: UInt8 = 0xFF

    static func frames(_ input: [UInt8]) -> [[UInt8]] {
        input.split(separator: separator, omittingEmptySubsequences: false).map { Array($0) }
    }

    static func input(_ frames: [[UInt8]]) -> [UInt8] {
        Array(frames.joined(separator: [separator]))
    }
}
