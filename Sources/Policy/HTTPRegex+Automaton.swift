/// A Thompson NFA of a parsed regex (one start, one accepting state), and from it the minimal `ByteDFA`: subset
/// construction over byte classes, then Hopcroft's partition refinement.
struct HTTPRegexNFA {
    private var edges: [[(label: ByteSet, to: Int)]] = [[]]
    private var epsilons: [[Int]] = [[]]
    private var accepting = 0

    init(_ tree: HTTPRegexNode) throws(HTTPRegexError) {
        accepting = try build(tree, from: 0)
    }

    private mutating func newState() throws(HTTPRegexError) -> Int {
        guard edges.count < HTTPRegex.nfaBudget else {
            throw HTTPRegexError("regex expands to more than \(HTTPRegex.nfaBudget) states (nested repetitions)")
        }
        edges.append([])
        epsilons.append([])
        return edges.count - 1
    }

    /// Adds the states matching `node` after state `start`; returns the state reached at its end.
    private mutating func build(_ node: HTTPRegexNode, from start: Int) throws(HTTPRegexError) -> Int {
        switch node {
        case .empty:
            return start
        case .bytes(let label):
            let end = try newState()
            edges[start].append((label, end))
            return end
        case .concat(let items):
            var current = start
            for item in items { current = try build(item, from: current) }
            return current
        case .alternate(let branches):
            let end = try newState()
            for branch in branches {
                let entry = try newState()
                epsilons[start].append(entry)
                epsilons[try build(branch, from: entry)].append(end)
            }
            return end
        case .repetition(let body, let min, let max):
            var current = start
            for _ in 0..<min { current = try build(body, from: current) }
            guard let max else {
                let loop = try newState()
                epsilons[current].append(loop)
                epsilons[try build(body, from: loop)].append(loop)
                return loop
            }
            guard max > min else { return current }
            let end = try newState()
            for _ in min..<max {
                epsilons[current].append(end)
                // A fresh entry per copy, so the loop-back edges of a copy's body never reach the exit of another.
                let entry = try newState()
                epsilons[current].append(entry)
                current = try build(body, from: entry)
            }
            epsilons[current].append(end)
            return end
        }
    }

    private func closure(_ states: [Int]) -> [Int] {
        var seen = Set(states)
        var stack = states
        while let state = stack.popLast() {
            for next in epsilons[state] where seen.insert(next).inserted { stack.append(next) }
        }
        return seen.sorted()
    }

    /// Partition of the byte values into classes no edge label tells apart, and one byte of each class.
    private func byteClasses() -> (classOf: [Int], representatives: [UInt8]) {
        var classOf = Array(repeating: 0, count: 256)
        var labels = Set<ByteSet>()
        for stateEdges in edges { for edge in stateEdges { labels.insert(edge.label) } }
        for label in labels {
            var renumber: [Int: Int] = [:]
            for byte in 0..<256 {
                let key = classOf[byte] * 2 + (label.contains(UInt8(byte)) ? 1 : 0)
                if renumber[key] == nil { renumber[key] = renumber.count }
                classOf[byte] = renumber[key]!
            }
        }
        var representatives: [UInt8] = []
        for byte in 0..<256 where classOf[byte] == representatives.count {
            representatives.append(UInt8(byte))
        }
        return (classOf, representatives)
    }

    func minimalDFA(stateBudget: Int) throws(HTTPRegexError) -> ByteDFA {
        let (classOf, representatives) = byteClasses()
        // Subset construction; state 0 is the empty set (dead), state 1 the start.
        var sets: [[Int]] = [[], closure([0])]
        var numbers: [[Int]: Int] = [[]: 0, sets[1]: 1]
        var transitions: [[Int]] = [Array(repeating: 0, count: representatives.count)]
        var next = 1
        while next < sets.count {
            var row: [Int] = []
            for byte in representatives {
                var targets: [Int] = []
                for state in sets[next] {
                    for edge in edges[state] where edge.label.contains(byte) { targets.append(edge.to) }
                }
                let target = closure(targets)
                if let known = numbers[target] {
                    row.append(known)
                    continue
                }
                guard sets.count <= stateBudget else {
                    throw HTTPRegexError(
                        "regex needs more than \(stateBudget) automaton states; simplify it (bounded repetitions "
                            + "and alternatives under them multiply states)")
                }
                numbers[target] = sets.count
                row.append(sets.count)
                sets.append(target)
            }
            transitions.append(row)
            next += 1
        }
        let accepts = sets.map { $0.contains(accepting) }
        let block = Self.hopcroft(transitions: transitions, accepting: accepts, classes: representatives.count)
        return Self.renumbered(transitions: transitions, accepting: accepts, block: block, classOf: classOf)
    }

    /// The equivalence class (block) of each state of a complete DFA, by Hopcroft's algorithm.
    static func hopcroft(transitions: [[Int]], accepting: [Bool], classes: Int) -> [Int] {
        let count = transitions.count
        var predecessors = Array(repeating: Array(repeating: [Int](), count: count), count: classes)
        for state in 0..<count {
            for symbol in 0..<classes { predecessors[symbol][transitions[state][symbol]].append(state) }
        }
        var blocks: [[Int]] = []
        var blockOf = Array(repeating: 0, count: count)
        for wanted in [false, true] {
            let members = (0..<count).filter { accepting[$0] == wanted }
            if members.isEmpty { continue }
            for state in members { blockOf[state] = blocks.count }
            blocks.append(members)
        }
        var waiting = Array(blocks.indices)
        var isWaiting = Array(repeating: true, count: blocks.count)
        var mark = Array(repeating: -1, count: count)
        var stamp = 0
        while let splitter = waiting.popLast() {
            isWaiting[splitter] = false
            let members = blocks[splitter]
            for symbol in 0..<classes {
                stamp += 1
                var touched: [Int: [Int]] = [:]
                for target in members {
                    for state in predecessors[symbol][target] where mark[state] != stamp {
                        mark[state] = stamp
                        touched[blockOf[state], default: []].append(state)
                    }
                }
                for (split, inside) in touched.sorted(by: { $0.key < $1.key }) where inside.count < blocks[split].count
                {
                    let fresh = blocks.count
                    let moved = Set(inside)
                    blocks[split].removeAll { moved.contains($0) }
                    blocks.append(inside)
                    for state in inside { blockOf[state] = fresh }
                    if isWaiting[split] {
                        waiting.append(fresh)
                        isWaiting.append(true)
                    } else {
                        let smaller = inside.count <= blocks[split].count ? fresh : split
                        isWaiting.append(false)
                        isWaiting[smaller] = true
                        waiting.append(smaller)
                    }
                }
            }
        }
        return blockOf
    }

    /// One state per block, numbered as the kernel wants: the dead state's block 0, the start's 1, the others in
    /// breadth-first order from the start.
    static func renumbered(transitions: [[Int]], accepting: [Bool], block: [Int], classOf: [Int]) -> ByteDFA {
        let dead = ByteDFA.State(next: Array(repeating: 0, count: 256), accepting: false)
        // The start is dead: the regex matches nothing (`[^\s\S]`); a start that leads nowhere.
        if block[1] == block[0] { return ByteDFA(states: [dead, dead]) }
        var number: [Int: Int] = [block[0]: 0, block[1]: 1]
        var order = [1]
        var representative: [Int: Int] = [block[1]: 1]
        var position = 0
        while position < order.count {
            let state = order[position]
            position += 1
            for target in transitions[state] where number[block[target]] == nil {
                number[block[target]] = number.count
                representative[block[target]] = target
                order.append(target)
            }
        }
        var states = [dead]
        for state in order {
            let next = (0..<256).map { UInt16(number[block[transitions[state][classOf[$0]]]]!) }
            states.append(ByteDFA.State(next: next, accepting: accepting[state]))
        }
        return ByteDFA(states: states)
    }
}
