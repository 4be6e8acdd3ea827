// ClassicClient.cs: a console stand-in for the ORIGINAL TCPIPClient of the CodeProject article
// "TCPIP Server and Client example", written from the wire notes SEED-WIRE.md (shared/seed/).
// Section numbers in comments ("§6") refer to that document.
//
// It puts on the wire exactly what the original client sends, and reacts to the server's packets as the
// original does; a test harness drives it through stdin (commands) and reads stdout (events).
//
//   mono classic-client.exe --host H --port P --name USERNAME [--station NAME] [--dir DOWNLOADDIR]
//                           [--num1 N --num2 N]
//
// Commands (stdin): msg ID TEXT | msgrep ID COUNT CHAR | bulk ID COUNT | file ID PATH | roster | nums N1 N2 |
//   sleep MS | close. TEXT, CHAR and PATH take the escapes \n \r \t \\ \0 \s \e \uXXXX. End of input = one Close.
// Events (stdout, one per line): connected, id N IP, registered, registered-other N, peer-add/peer-update
//   ID NAME ADDRESS STATION, peer-rejected ID REASON, peer-remove ID, message FROM NUM1 NUM2 TEXT,
//   message-dropped FROM REASON, msg-sent ID CHARS PACKETS, ack FROM, bulk-sent/bulk-acked COUNT SECONDS,
//   ping TICKS, ping-from N TARGET, file-sent ID NAME SIZE, file-received FROM NAME SIZE,
//   file-unacked FROM NAME REASON, file-abandoned FROM NAME, file-acked FROM NAME, roster-entry ...,
//   roster-end, host-exiting, server-silent, unknown-packet TYPE, error TEXT, disconnected REASON.
//   Fields escape \\ \n \r \t \0 and other controls as \uXXXX; NAME/ADDRESS/STATION also a space as \s
//   and an empty value as \e. TEXT is the rest of the line.
//
// Build: scripts/build-classic-client (mcs; only mscorlib, System and System.Core are used).
// Exit codes: 0 after a clean close, 1 when the connection cannot be made, 2 when the connection was
// lost (EOF, socket error, 5 minutes of silence), 64 for bad arguments.

using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;

namespace ClassicStandIn
{
    // ---------------------------------------------------------------------------------------------------
    // Enums and packet classes, declared as the original declares them (§2, §6, §11).
    // ---------------------------------------------------------------------------------------------------

    public enum PACKETTYPES
    {
        TYPE_Ping = 1,
        TYPE_PingResponse = 2,
        TYPE_RequestCredentials = 3,
        TYPE_MyCredentials = 4,
        TYPE_Registered = 5,
        TYPE_HostExiting = 6,
        TYPE_ClientData = 7,
        TYPE_ClientDisconnecting = 8,
        TYPE_CredentialsUpdate = 9,
        TYPE_Close = 10,
        TYPE_Message = 11,
        TYPE_MessageReceived = 12,
        TYPE_FileStart = 13,
        TYPE_FileChunk = 14,
        TYPE_FileEnd = 15,
        TYPE_DoneRecievingFile = 16
    }

    // No explicit values: Start = 0, Guts = 1, End = 2 (§6).
    public enum PACKETTYPES_SUBMESSAGE { SUBMSG_MessageStart, SUBMSG_MessageGuts, SUBMSG_MessageEnd }

    public enum APPLEVEL { None = 0, ClientLevel1 = 1, ClientLevel2 = 2 }

    // §2.1: every type except 7, 13, 14, 15. 18-byte header; 18 + 120 + 40 + 96 + 600 + 150 = 1024.
    [StructLayout(LayoutKind.Sequential, Pack = 1)]
    public class PACKET_DATA
    {
        public UInt16 Packet_Type;
        public UInt16 Packet_Size;      // not a length: 16, 1024 or 0 (§2.5)
        public UInt16 Data_Type;        // message sub-type (§6)
        public UInt16 maskTo;           // always 0 (§2.6)
        public UInt32 idTo;
        public UInt32 idFrom;
        public UInt16 nAppLevel;

        public UInt32 Data1, Data2, Data3, Data4, Data5;
        public Int32 Data6, Data7, Data8, Data9, Data10;
        public UInt32 Data11, Data12, Data13, Data14, Data15;
        public Int32 Data16, Data17, Data18, Data19, Data20;
        public UInt32 Data21, Data22, Data23, Data24, Data25;
        public Int32 Data26, Data27, Data28, Data29, Data30;

        public Double DataDouble1, DataDouble2, DataDouble3, DataDouble4, DataDouble5;
        public Int64 DataLong1, DataLong2, DataLong3, DataLong4;
        public UInt64 DataULong1, DataULong2, DataULong3, DataULong4;
        public Int64 DataTimeTick1, DataTimeTick2, DataTimeTick3, DataTimeTick4;

        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 300)]
        public Char[] szStringDataA = new Char[300];
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 300)]
        public Char[] szStringDataB = new Char[300];
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 150)]
        public Char[] szStringData150 = new Char[150];
    }

    // §2.2: type 7 only (and type 8, of which only idFrom is read). 16-byte header, iClientID at 206.
    [StructLayout(LayoutKind.Sequential, Pack = 1)]
    public class PACKET_CLIENTDATA
    {
        public UInt16 Packet_Type;
        public UInt16 Packet_Size;
        public UInt16 Data_Type;
        public UInt16 maskTo;
        public UInt32 idTo;
        public UInt32 idFrom;

        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 50)]
        public char[] szUserName = new char[50];
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 30)]
        public char[] szUsersAddress = new char[30];
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 30)]
        public char[] szUsersAlternateAddress = new char[30];
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 30)]
        public char[] szUsersClientVersion = new char[30];
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 50)]
        public char[] szStationName = new char[50];

        public UInt16 iClientID;
        public UInt32 ClientsColorRGB;
        public UInt16 ClientStatus;
        public UInt16 ListeningPort;
        public long StatusTimeTicks;

        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 800)]
        public byte[] SpaceTaker = new byte[800];
    }

    // §2.3: types 13 and 15. Ids are 16 bits, at bytes 2-5.
    [StructLayout(LayoutKind.Sequential, Pack = 1)]
    public class PACKET_FILESTART
    {
        public UInt16 Packet_Type;
        public UInt16 idTo;
        public UInt16 idFrom;
        public UInt16 FileID;
        public UInt32 File_Size;

        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 98)]
        public char[] szFileName = new char[98];

        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 914)]
        public byte[] FilePart1 = new byte[914];
    }

    // §2.4: type 14.
    [StructLayout(LayoutKind.Sequential, Pack = 1)]
    public class PACKET_FILECHUNK
    {
        public UInt16 Packet_Type;
        public UInt16 idTo;
        public UInt16 idFrom;
        public UInt16 FileID;
        public UInt16 Chunk_Size;
        public UInt32 ChunkCount;

        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 1010)]
        public byte[] FilePartChunk = new byte[1010];
    }

    // ---------------------------------------------------------------------------------------------------
    // Windows-1252, by hand (§3, §14): one byte per char. Latin-1 plus the 0x80-0x9F table. The five
    // bytes that cp1252 leaves undefined (81, 8D, 8F, 90, 9D) map to U+0081 etc. both ways, as Windows
    // does; any other char outside the code page becomes '?' (no best-fit mapping).
    // ---------------------------------------------------------------------------------------------------
    static class Cp1252
    {
        static readonly char[] High = {
            '\u20AC', '\u0081', '\u201A', '\u0192', '\u201E', '\u2026', '\u2020', '\u2021',
            '\u02C6', '\u2030', '\u0160', '\u2039', '\u0152', '\u008D', '\u017D', '\u008F',
            '\u0090', '\u2018', '\u2019', '\u201C', '\u201D', '\u2022', '\u2013', '\u2014',
            '\u02DC', '\u2122', '\u0161', '\u203A', '\u0153', '\u009D', '\u017E', '\u0178' };
        static readonly Dictionary<char, byte> Reverse = new Dictionary<char, byte>();

        static Cp1252() { for (int i = 0; i < High.Length; i++) Reverse[High[i]] = (byte)(0x80 + i); }

        public static char Decode(byte b) => (b >= 0x80 && b <= 0x9F) ? High[b - 0x80] : (char)b;

        public static byte Encode(char c)
        {
            if (c < 0x80 || (c >= 0xA0 && c <= 0xFF)) return (byte)c;
            byte b;
            return Reverse.TryGetValue(c, out b) ? b : (byte)'?';
        }
    }

    // ---------------------------------------------------------------------------------------------------
    // Marshalling to and from 1024-byte buffers (§1, §14). StructureToPtr / PtrToStructure as in the
    // original's PACKET_FUNCTIONS, with Mono's ANSI char handling replaced: the unmanaged buffer is zeroed
    // first, every char[] field is then rewritten one byte per char, and on reading every char[] field is
    // decoded from the raw bytes.
    // ---------------------------------------------------------------------------------------------------
    static class Wire
    {
        public const int PacketSize = 1024;
        static readonly byte[] Zeros = new byte[PacketSize];
        // The char[] fields of a packet class: field, offset (Marshal.OffsetOf) and SizeConst (the length
        // of the array a fresh packet object is created with).
        sealed class CharField { public FieldInfo Field; public int Offset, Size; }
        static readonly Dictionary<Type, List<CharField>> CharFields = new Dictionary<Type, List<CharField>>();

        static List<CharField> CharFieldsOf(Type t)
        {
            lock (CharFields)
            {
                List<CharField> list;
                if (CharFields.TryGetValue(t, out list)) return list;
                if (Marshal.SizeOf(t) != PacketSize) throw new InvalidOperationException(t.Name + " is not 1024 bytes");
                object fresh = Activator.CreateInstance(t);
                list = new List<CharField>();
                foreach (FieldInfo f in t.GetFields(BindingFlags.Public | BindingFlags.Instance))
                    if (f.FieldType == typeof(char[]))
                        list.Add(new CharField { Field = f, Offset = Marshal.OffsetOf(t, f.Name).ToInt32(),
                                                 Size = ((char[])f.GetValue(fresh)).Length });
                return CharFields[t] = list;
            }
        }

        public static byte[] ToBytes(object packet)
        {
            byte[] raw = new byte[PacketSize];
            IntPtr buffer = Marshal.AllocHGlobal(PacketSize);
            try
            {
                Marshal.Copy(Zeros, 0, buffer, PacketSize);          // §14: AllocHGlobal is not zeroed
                Marshal.StructureToPtr(packet, buffer, false);
                Marshal.Copy(buffer, raw, 0, PacketSize);
            }
            finally { Marshal.FreeHGlobal(buffer); }
            foreach (CharField cf in CharFieldsOf(packet.GetType()))  // §3: one byte per char, NUL padded
            {
                char[] chars = (char[])cf.Field.GetValue(packet);
                for (int i = 0; i < cf.Size; i++)
                    raw[cf.Offset + i] = (chars != null && i < chars.Length) ? Cp1252.Encode(chars[i]) : (byte)0;
            }
            return raw;
        }

        public static T FromBytes<T>(byte[] raw) where T : class
        {
            IntPtr buffer = Marshal.AllocHGlobal(PacketSize);
            T packet;
            try
            {
                Marshal.Copy(raw, 0, buffer, PacketSize);
                packet = (T)Marshal.PtrToStructure(buffer, typeof(T));
            }
            finally { Marshal.FreeHGlobal(buffer); }
            foreach (CharField cf in CharFieldsOf(typeof(T)))        // §14: don't trust Mono's decoding
            {
                char[] chars = new char[cf.Size];
                for (int i = 0; i < cf.Size; i++) chars[i] = Cp1252.Decode(raw[cf.Offset + i]);
                cf.Field.SetValue(packet, chars);
            }
            return packet;
        }

        // Readers turn all N chars into a string and trim trailing NULs only (§3).
        public static string Str(char[] chars) => new string(chars).TrimEnd('\0');

        // Writers that cap at N-1 chars and force a NUL at [N-1] (MyCredentials, §3).
        public static void CopyCapped(string s, char[] dst)
        {
            int n = Math.Min(s.Length, dst.Length - 1);
            s.CopyTo(0, dst, 0, n);
            dst[dst.Length - 1] = '\0';
        }

        public static ushort U16(byte[] p, int offset) => (ushort)(p[offset + 1] << 8 | p[offset]);

        // File packets and the connection test carry a 16-bit id patched into bytes 2-3 (§8.1).
        public static void PatchIdTo(byte[] p, int id) { p[2] = (byte)(id & 0xFF); p[3] = (byte)((id >> 8) & 0xFF); }
    }

    // ---------------------------------------------------------------------------------------------------
    // Escaping of event and command text (one event or command per line).
    // ---------------------------------------------------------------------------------------------------
    static class Esc
    {
        // Text: \\ \n \r \t \0, other control chars (C0, DEL, C1, U+2028/2029) as \uXXXX.
        public static string Text(string s)
        {
            var sb = new StringBuilder(s.Length + 8);
            foreach (char c in s)
            {
                int named = "\\\n\r\t\0".IndexOf(c);
                if (named >= 0) sb.Append('\\').Append("\\nrt0"[named]);
                else if (c < 0x20 || c == 0x7F || (c >= 0x80 && c <= 0x9F) || c == '\u2028' || c == '\u2029')
                    sb.Append("\\u").Append(((int)c).ToString("X4"));
                else sb.Append(c);
            }
            return sb.ToString();
        }

        // A space-separated field (NAME, ADDRESS, STATION): also a space as \s, and "" as \e.
        public static string Field(string s) => s.Length == 0 ? "\\e" : Text(s).Replace(" ", "\\s");

        // Decodes \n \r \t \\ \0 \s \e \uXXXX; any other backslash is kept as it is.
        public static string Decode(string s)
        {
            var sb = new StringBuilder(s.Length);
            for (int i = 0; i < s.Length; i++)
            {
                char c = s[i];
                if (c != '\\' || i + 1 >= s.Length) { sb.Append(c); continue; }
                char n = s[i + 1];
                int hex;
                switch (n)
                {
                    case 'n': sb.Append('\n'); i++; break;
                    case 'r': sb.Append('\r'); i++; break;
                    case 't': sb.Append('\t'); i++; break;
                    case '0': sb.Append('\0'); i++; break;
                    case '\\': sb.Append('\\'); i++; break;
                    case 's': sb.Append(' '); i++; break;
                    case 'e': i++; break;
                    case 'u':
                        if (i + 5 < s.Length && int.TryParse(s.Substring(i + 2, 4), NumberStyles.HexNumber,
                                CultureInfo.InvariantCulture, out hex))
                        { sb.Append((char)hex); i += 5; }
                        else sb.Append(c);
                        break;
                    default: sb.Append(c); break;
                }
            }
            return sb.ToString();
        }
    }

    // A peer from TYPE_ClientData (§7.1). The original builds it with IPAddress.Parse.
    sealed class Peer
    {
        public int Id;
        public string Name, Address, AltAddress, Station;
        public IPAddress Ip;
    }

    // A file being received (§8.3), keyed by FileID.
    sealed class IncomingFile
    {
        public int From;
        public ushort FileId;
        public string Name, TmpPath, Failure;
        public FileStream Stream;
        public int IdleTicks;           // 10 s ticks without a packet; abandoned at 6 (§8.3)
        public bool Abandoned;
    }

    // State of the `bulk` command.
    sealed class Bulk
    {
        public int Target, Count, Acked;
        public Stopwatch Clock;
        public bool SentPrinted, AckedDone;
        public double AckSeconds;
    }

    // ---------------------------------------------------------------------------------------------------
    // The client.
    // ---------------------------------------------------------------------------------------------------
    sealed class ClassicClient
    {
        static readonly CultureInfo EnUs = CultureInfo.GetCultureInfo("en-US");
        static readonly CultureInfo Inv = CultureInfo.InvariantCulture;
        const string ClientVersion = "1.1.2";               // §7 step 3: AssemblyInfo 1.1.2.0

        // Options.
        string host, userName, station, downloadDir;
        int port, num1, num2;

        // Connection.
        Socket sock;
        readonly object sendLock = new object();
        int finishing;                                      // set once when we start to go away
        volatile bool closing;

        // What the original keeps (§4, §6, §7, §8, §9).
        readonly object state = new object();
        int myId;                                           // MyHostServerID, from RequestCredentials.idTo
        long serverTime;
        readonly Dictionary<int, Peer> roster = new Dictionary<int, Peer>();
        readonly Dictionary<int, StringBuilder> textInformation = new Dictionary<int, StringBuilder>();
        readonly Dictionary<ushort, IncomingFile> files = new Dictionary<ushort, IncomingFile>();
        readonly Stopwatch sinceLastPacket = Stopwatch.StartNew();
        Timer generalTimer, fileTimer;

        readonly object bulkLock = new object();
        Bulk bulk;

        // Output: events on stdout, errors on stderr, UTF-8, flushed after every line.
        static readonly object outLock = new object();
        static readonly StreamWriter Out = new StreamWriter(Console.OpenStandardOutput(), new UTF8Encoding(false));
        static readonly StreamWriter Err = new StreamWriter(Console.OpenStandardError(), new UTF8Encoding(false));

        static void Emit(string line) { lock (outLock) { Out.Write(line); Out.Write('\n'); Out.Flush(); } }
        static void Warn(string line) { lock (outLock) { Err.Write("classic-client: " + line + "\n"); Err.Flush(); } }
        static void Error(string line) { Warn(line); Emit("error " + Esc.Text(line)); }

        static int Main(string[] args)
        {
            var c = new ClassicClient();
            string usage;
            if (!c.ParseArgs(args, out usage))
            {
                Warn(usage);
                Warn("usage: mono classic-client.exe --host H --port P --name USERNAME [--station NAME] " +
                     "[--dir DOWNLOADDIR] [--num1 N --num2 N]");
                return 64;
            }
            return c.Run();
        }

        bool ParseArgs(string[] args, out string problem)
        {
            problem = null;
            station = Environment.MachineName;              // §7: Environment.MachineName
            downloadDir = Environment.GetFolderPath(Environment.SpecialFolder.MyDocuments); // §8.3: My Documents
            if (string.IsNullOrEmpty(downloadDir)) downloadDir = Directory.GetCurrentDirectory();
            for (int i = 0; i < args.Length; i++)
            {
                if (i + 1 >= args.Length) { problem = "missing value for " + args[i]; return false; }
                string v = args[++i];
                switch (args[i - 1])
                {
                    case "--host": host = v; break;
                    case "--port":
                        // §1: a port that does not parse becomes 9999, as in the original's form.
                        if (!int.TryParse(v, NumberStyles.Integer, Inv, out port)) port = 9999;
                        break;
                    case "--name": userName = v; break;
                    case "--station": station = v; break;
                    case "--dir": downloadDir = v; break;
                    // §6: the two number boxes; 0 when not numbers (Int32.TryParse).
                    case "--num1": int.TryParse(v, NumberStyles.Integer, Inv, out num1); break;
                    case "--num2": int.TryParse(v, NumberStyles.Integer, Inv, out num2); break;
                    default: problem = "unknown option " + args[i - 1]; return false;
                }
            }
            if (host == null || userName == null || port == 0) { problem = "--host, --port and --name are required"; return false; }
            return true;
        }

        int Run()
        {
            try
            {
                // The original resolves names that are not dotted quads, and uses IPv4 only.
                IPAddress address;
                if (!IPAddress.TryParse(host, out address))
                {
                    address = null;
                    foreach (IPAddress a in Dns.GetHostEntry(host).AddressList)
                        if (a.AddressFamily == AddressFamily.InterNetwork) { address = a; break; }
                    if (address == null) throw new SocketException((int)SocketError.HostNotFound);
                }
                sock = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                sock.Connect(new IPEndPoint(address, port));
            }
            catch (Exception ex)
            {
                Warn("cannot connect to " + host + ":" + port + ": " + ex.Message);
                return 1;
            }
            Emit("connected");

            // §9: a 5 s timer that gives up after 5 minutes without a complete packet; §8.3: a 10 s file
            // watchdog per incoming file.
            generalTimer = new Timer(delegate { GeneralTimerTick(); }, null, 5000, 5000);
            fileTimer = new Timer(delegate { FileTimerTick(); }, null, 10000, 10000);

            var reader = new Thread(ReceiveLoop) { IsBackground = true, Name = "receive" };
            reader.Start();

            // Commands, one per line. End of input is like closing the original's window: one Close.
            var stdin = new StreamReader(Console.OpenStandardInput(), new UTF8Encoding(false));
            string line;
            while ((line = stdin.ReadLine()) != null)
            {
                try { Execute(line.TrimEnd('\r').TrimStart(' ')); }
                catch (Exception ex) { Error("command failed: " + ex.Message); }
            }
            Disconnect(1, "stdin-closed", 0);
            return 0;
        }

        // ---- Sending ---------------------------------------------------------------------------------

        // Every write is exactly one 1024-byte packet (§1); the lock keeps packets whole between threads.
        bool Send(byte[] packet)
        {
            lock (sendLock)
            {
                try
                {
                    int off = 0;
                    while (off < packet.Length) off += sock.Send(packet, off, packet.Length - off, SocketFlags.None);
                    return true;
                }
                catch (Exception ex)
                {
                    if (!closing) Warn("send failed: " + ex.Message);
                    return false;
                }
            }
        }

        // TYPE_Close: Packet_Size 16, ids 0 (§10).
        void TellServerImDisconnecting()
        {
            var x = new PACKET_DATA { Packet_Type = (ushort)PACKETTYPES.TYPE_Close, Packet_Size = 16 };
            Send(Wire.ToBytes(x));
        }

        // Leaves for good: `closes` Close packets, 75 ms, close the socket (§10), then exit.
        void Disconnect(int closes, string reason, int exitCode)
        {
            if (Interlocked.Exchange(ref finishing, 1) != 0) { Thread.Sleep(Timeout.Infinite); return; }
            if (closes > 0)
            {
                for (int i = 0; i < closes; i++) TellServerImDisconnecting();
                Thread.Sleep(75);                           // "this is needed!" in the original
            }
            Finish(reason, exitCode);
        }

        void Finish(string reason, int exitCode)
        {
            closing = true;
            generalTimer.Dispose();
            fileTimer.Dispose();
            try { sock.Close(); } catch { }
            lock (state)
                foreach (IncomingFile f in files.Values)
                    if (f.Stream != null) { try { f.Stream.Dispose(); } catch { } }
            Emit("disconnected " + reason);
            Environment.Exit(exitCode);
        }

        // §6 SendMessageOut: Start, Guts while text remains, End; one PACKET_DATA reused throughout.
        int SendMessageOut(int to, string text)
        {
            var x = new PACKET_DATA
            {
                Packet_Type = (ushort)PACKETTYPES.TYPE_Message,
                Data_Type = (ushort)PACKETTYPES_SUBMESSAGE.SUBMSG_MessageStart,
                Packet_Size = 16,
                maskTo = 0,
                idTo = (uint)to,                            // 0 = "send data to server"
                idFrom = (uint)Volatile.Read(ref myId),
                Data16 = num1,
                Data17 = num2
            };
            int size = x.szStringDataA.Length;              // 300
            int chunk = Math.Min(text.Length, size);
            text.CopyTo(0, x.szStringDataA, 0, chunk);      // a full chunk has no NUL (§3)
            x.Data1 = (uint)chunk;
            Send(Wire.ToBytes(x));
            int packets = 1;

            x.Data_Type = (ushort)PACKETTYPES_SUBMESSAGE.SUBMSG_MessageGuts;
            int pos = chunk;
            while (text.Length - pos > 0)
            {
                Array.Clear(x.szStringDataA, 0, size);
                chunk = Math.Min(text.Length - pos, size);
                text.CopyTo(pos, x.szStringDataA, 0, chunk);
                x.Data1 = (uint)chunk;
                pos += chunk;
                Send(Wire.ToBytes(x));
                packets++;
            }

            // End: Data1 = total; szStringDataA still holds the last chunk.
            x.Data_Type = (ushort)PACKETTYPES_SUBMESSAGE.SUBMSG_MessageEnd;
            x.Data1 = (uint)pos;
            Send(Wire.ToBytes(x));
            return packets + 1;
        }

        // §8.1: connection test, FileStart, FileChunk..., FileEnd, to one recipient.
        void SendFile(int to, string path)
        {
            if (!File.Exists(path)) { Error("file: no such file: " + path); return; }

            // FileID = new Random(DateTime.Now.Millisecond).Next(65535); the original then sleeps 50 ms.
            // (The original skips a file whose FileID is 0, a 1-in-65535 accident; this stand-in sends it.)
            ushort fileId = (ushort)new Random(DateTime.Now.Millisecond).Next(UInt16.MaxValue);
            Thread.Sleep(50);

            // "Connection test": a Ping with the recipient id patched over Packet_Size (§8.1, §11).
            var test = new PACKET_DATA { Packet_Type = (ushort)PACKETTYPES.TYPE_Ping, Packet_Size = 16 };
            byte[] testBytes = Wire.ToBytes(test);
            Wire.PatchIdTo(testBytes, to);
            Send(testBytes);

            // The dates, as DateTime.ToString() in the sender's culture (here en-US), "created|modified".
            string dates = File.GetCreationTime(path).ToString(EnUs) + "|" + File.GetLastWriteTime(path).ToString(EnUs);
            string name = Path.GetFileName(path);
            long length;
            using (var fs = new FileStream(path, FileMode.Open, FileAccess.Read))
            {
                length = fs.Length;
                var start = new PACKET_FILESTART
                {
                    Packet_Type = (ushort)PACKETTYPES.TYPE_FileStart,
                    FileID = fileId,
                    File_Size = (uint)fs.Length,
                    idFrom = (ushort)Volatile.Read(ref myId)
                };
                // At most 97 chars; [97] is never written (§3).
                name.CopyTo(0, start.szFileName, 0, Math.Min(name.Length, start.szFileName.Length - 1));
                fs.Read(start.FilePart1, 0, start.FilePart1.Length);  // the first 914 bytes

                byte[] bytes = Wire.ToBytes(start);         // the struct's idTo stays 0; bytes 2-3 patched
                Wire.PatchIdTo(bytes, to);
                Send(bytes);

                // One FILECHUNK object reused: a short last chunk keeps stale bytes after Chunk_Size.
                var chunk = new PACKET_FILECHUNK
                {
                    Packet_Type = (ushort)PACKETTYPES.TYPE_FileChunk,
                    FileID = fileId,
                    idFrom = (ushort)Volatile.Read(ref myId)
                };
                uint count = 0;
                int read;
                while ((read = fs.Read(chunk.FilePartChunk, 0, chunk.FilePartChunk.Length)) > 0)
                {
                    chunk.Chunk_Size = (ushort)read;
                    chunk.ChunkCount = count++;
                    byte[] chunkBytes = Wire.ToBytes(chunk);
                    Wire.PatchIdTo(chunkBytes, to);
                    Send(chunkBytes);
                }

                // FileEnd reuses the FILESTART object: File_Size and FilePart1 unchanged, dates in szFileName.
                start.Packet_Type = (ushort)PACKETTYPES.TYPE_FileEnd;
                start.FileID = fileId;
                Array.Clear(start.szFileName, 0, start.szFileName.Length);
                dates.CopyTo(0, start.szFileName, 0, Math.Min(dates.Length, start.szFileName.Length));
                bytes = Wire.ToBytes(start);
                Wire.PatchIdTo(bytes, to);
                Send(bytes);
            }
            Emit("file-sent " + to + " " + Esc.Field(name) + " " + length);
        }

        // ---- Receiving -------------------------------------------------------------------------------

        // §1: append whatever TCP delivers and cut it every 1024 bytes.
        void ReceiveLoop()
        {
            byte[] buf = new byte[Wire.PacketSize];
            byte[] pending = new byte[2 * Wire.PacketSize];
            int have = 0;
            while (true)
            {
                int n;
                try { n = sock.Receive(buf, 0, buf.Length, SocketFlags.None); }
                catch (Exception ex)
                {
                    if (closing || finishing != 0) return;
                    Warn("receive failed: " + ex.Message);
                    if (Interlocked.Exchange(ref finishing, 1) == 0) Finish("error", 2);
                    return;
                }
                if (n == 0)
                {
                    // The original keeps reading after a zero-length read and only notices through the
                    // 5-minute rule (§10); a test tool reports the end of the stream at once.
                    if (closing || finishing != 0) return;
                    if (Interlocked.Exchange(ref finishing, 1) == 0) Finish("eof", 2);
                    return;
                }
                Buffer.BlockCopy(buf, 0, pending, have, n);
                have += n;
                int at = 0;
                while (have - at >= Wire.PacketSize)
                {
                    byte[] packet = new byte[Wire.PacketSize];
                    Buffer.BlockCopy(pending, at, packet, 0, Wire.PacketSize);
                    at += Wire.PacketSize;
                    if (finishing != 0) return;             // packets after HostExiting are not processed
                    try { Dispatch(packet); }
                    catch (Exception ex) { Warn("packet type " + Wire.U16(packet, 0) + ": " + ex.Message); }
                    lock (state) sinceLastPacket.Restart();
                }
                Buffer.BlockCopy(pending, at, pending, 0, have - at);
                have -= at;
            }
        }

        // The type is the UInt16 at 0 (§1); the type selects the layout (§1, §11).
        void Dispatch(byte[] p)
        {
            ushort type = Wire.U16(p, 0);
            switch (type)
            {
                case (ushort)PACKETTYPES.TYPE_RequestCredentials: OnRequestCredentials(p); break;
                case (ushort)PACKETTYPES.TYPE_Ping: OnPing(p); break;
                case (ushort)PACKETTYPES.TYPE_HostExiting: OnHostExiting(); break;
                case (ushort)PACKETTYPES.TYPE_Registered:
                    {
                        // The original only turns its light green and reads no field (§7 step 5).
                        uint id = Wire.FromBytes<PACKET_DATA>(p).idFrom;
                        Emit(id == (uint)Volatile.Read(ref myId) ? "registered" : "registered-other " + id);
                        break;
                    }
                case (ushort)PACKETTYPES.TYPE_MessageReceived: OnMessageReceived(p); break;
                case (ushort)PACKETTYPES.TYPE_ClientData: OnClientData(p); break;
                case (ushort)PACKETTYPES.TYPE_Message: OnMessage(p); break;
                case (ushort)PACKETTYPES.TYPE_ClientDisconnecting: OnClientDisconnecting(p); break;
                case (ushort)PACKETTYPES.TYPE_FileStart: OnFileStart(Wire.U16(p, 4), p); break;
                case (ushort)PACKETTYPES.TYPE_FileChunk: OnFileChunk(p); break;
                case (ushort)PACKETTYPES.TYPE_FileEnd: OnFileEnd(Wire.U16(p, 4), p); break;
                case (ushort)PACKETTYPES.TYPE_DoneRecievingFile:
                    {
                        var d = Wire.FromBytes<PACKET_DATA>(p);
                        Emit("file-acked " + d.idFrom + " " + Esc.Field(Wire.Str(d.szStringDataA)));
                        break;
                    }
                default: Emit("unknown-packet " + type); break;  // the original ignores these silently
            }
        }

        // §7 steps 2-3: learn own id from idTo, answer with MyCredentials.
        void OnRequestCredentials(byte[] p)
        {
            var d = Wire.FromBytes<PACKET_DATA>(p);
            Volatile.Write(ref myId, (int)d.idTo);
            serverTime = d.DataLong1;

            var x = new PACKET_DATA
            {
                Packet_Type = (ushort)PACKETTYPES.TYPE_MyCredentials,
                Data_Type = 0,
                Packet_Size = (ushort)Marshal.SizeOf(typeof(PACKET_DATA)),  // 1024
                maskTo = 0,
                idTo = 0,
                idFrom = 0,
                nAppLevel = (ushort)APPLEVEL.None
            };
            Wire.CopyCapped(station, x.szStringDataA);     // computer name, <= 299 + NUL
            ClientVersion.CopyTo(0, x.szStringDataB, 0, ClientVersion.Length);
            Wire.CopyCapped(userName, x.szStringData150);  // user name, <= 149 + NUL
            Send(Wire.ToBytes(x));
            Emit("id " + d.idTo + " " + Esc.Field(Wire.Str(d.szStringDataA)));
        }

        // §9: every Ping is answered with a PingResponse echoing DataLong1 (also the broadcast connection
        // test of another client, §8.1, which arrives with idFrom = that client).
        void OnPing(byte[] p)
        {
            var d = Wire.FromBytes<PACKET_DATA>(p);
            serverTime = d.DataLong1;
            var x = new PACKET_DATA
            {
                Packet_Type = (ushort)PACKETTYPES.TYPE_PingResponse,
                Packet_Size = 16,
                DataLong1 = d.DataLong1
            };
            Send(Wire.ToBytes(x));
            // The original warns on its console when its clock and the server's differ by > 15 minutes.
            if (Math.Abs(DateTime.UtcNow.Ticks - serverTime) > TimeSpan.TicksPerMinute * 15)
                Warn("clock differs from the server's (DataLong1 " + serverTime + ") by more than 15 minutes");
            if (d.idFrom == 0) Emit("ping " + d.DataLong1);
            else Emit("ping-from " + d.idFrom + " " + d.Packet_Size);  // Packet_Size = the test's target id
        }

        // §10: wait about 1 s (100 x 10 ms), then the normal disconnect: one Close, 75 ms, close.
        void OnHostExiting()
        {
            Emit("host-exiting");
            Thread.Sleep(1000);
            Disconnect(1, "host-exiting", 0);
        }

        // §6: on any MessageReceived the original only turns its light green; it checks no field.
        void OnMessageReceived(byte[] p)
        {
            int from = (int)Wire.FromBytes<PACKET_DATA>(p).idFrom;
            Emit("ack " + from);
            lock (bulkLock)
            {
                if (bulk == null || bulk.AckedDone || from != bulk.Target) return;
                if (++bulk.Acked < bulk.Count) return;
                bulk.AckedDone = true;
                bulk.AckSeconds = bulk.Clock.Elapsed.TotalSeconds;
                if (bulk.SentPrinted) Emit("bulk-acked " + bulk.Count + " " + Seconds(bulk.AckSeconds));
            }
        }

        // §7.1: a known iClientID is an update; a new one needs a name and an address IPAddress.Parse takes.
        void OnClientData(byte[] p)
        {
            var c = Wire.FromBytes<PACKET_CLIENTDATA>(p);
            int id = c.iClientID;
            lock (state)
            {
                Peer peer;
                if (roster.TryGetValue(id, out peer))
                {
                    peer.Name = Wire.Str(c.szUserName);
                    peer.AltAddress = Wire.Str(c.szUsersAlternateAddress);
                    peer.Station = Wire.Str(c.szStationName);
                    Emit("peer-update " + Describe(peer));
                    return;
                }
                string name = Wire.Str(c.szUserName);
                string address = Wire.Str(c.szUsersAddress);
                if (string.IsNullOrEmpty(name)) { Emit("peer-rejected " + id + " empty-name"); return; }
                IPAddress ip;
                try { ip = IPAddress.Parse(address); }
                catch (Exception) { Emit("peer-rejected " + id + " bad-address " + Esc.Field(address)); return; }
                peer = new Peer
                {
                    Id = id, Name = name, Address = address, Ip = ip,
                    AltAddress = Wire.Str(c.szUsersAlternateAddress), Station = Wire.Str(c.szStationName)
                };
                roster.Add(id, peer);
                Emit("peer-add " + Describe(peer));
            }
        }

        static string Describe(Peer p) =>
            p.Id + " " + Esc.Field(p.Name) + " " + Esc.Field(p.Address) + " " + Esc.Field(p.Station);

        // §10: the departed id is idFrom (read through PACKET_CLIENTDATA; same offset as PACKET_DATA).
        void OnClientDisconnecting(byte[] p)
        {
            int id = (int)Wire.FromBytes<PACKET_CLIENTDATA>(p).idFrom;
            lock (state)
            {
                roster.Remove(id);
                textInformation.Remove(id);
                // The original's bug: it also drops the file body whose FileID equals that id.
                IncomingFile f;
                if (id >= 0 && id <= ushort.MaxValue && files.TryGetValue((ushort)id, out f))
                {
                    if (f.Stream != null) f.Stream.Dispose();
                    files.Remove((ushort)id);
                }
            }
            Emit("peer-remove " + id);
        }

        // §6, recipient: Start only from roster ids; Guts append; End shows and acknowledges.
        void OnMessage(byte[] p)
        {
            var d = Wire.FromBytes<PACKET_DATA>(p);
            int from = (int)d.idFrom;
            string chunk = Wire.Str(d.szStringDataA);
            string text = null;
            lock (state)
            {
                StringBuilder sb;
                switch (d.Data_Type)
                {
                    case (ushort)PACKETTYPES_SUBMESSAGE.SUBMSG_MessageStart:
                        if (!roster.ContainsKey(from)) { Emit("message-dropped " + from + " start-not-in-roster"); return; }
                        if (textInformation.TryGetValue(from, out sb)) sb.Clear();
                        else textInformation[from] = sb = new StringBuilder();
                        sb.Append(chunk);
                        return;
                    case (ushort)PACKETTYPES_SUBMESSAGE.SUBMSG_MessageGuts:
                        if (!textInformation.TryGetValue(from, out sb)) { Emit("message-dropped " + from + " guts-without-start"); return; }
                        sb.Append(chunk);
                        return;
                    case (ushort)PACKETTYPES_SUBMESSAGE.SUBMSG_MessageEnd:
                        // The End's own text and Data1 are never read. Without a buffer: no ack.
                        if (!textInformation.TryGetValue(from, out sb)) { Emit("message-dropped " + from + " end-without-start"); return; }
                        text = sb.ToString();
                        textInformation.Remove(from);
                        break;
                    default:
                        return;                             // any other sub-type: ignored
                }
            }
            // The acknowledgement: idTo copied from the fresh packet's idFrom (0), idFrom = own id,
            // all else 0, Packet_Size 0. The server broadcasts it (§6).
            var ack = new PACKET_DATA { Packet_Type = (ushort)PACKETTYPES.TYPE_MessageReceived };
            ack.idTo = ack.idFrom;
            ack.idFrom = (uint)Volatile.Read(ref myId);
            Send(Wire.ToBytes(ack));
            Emit("message " + from + " " + d.Data16 + " " + d.Data17 + " " + Esc.Text(text));
        }

        // §8.3 FileStart: a body keyed by FileID, a temp file "<FileID><name>.TMP" in the download dir.
        void OnFileStart(int from, byte[] p)
        {
            var s = Wire.FromBytes<PACKET_FILESTART>(p);
            string name = Wire.Str(s.szFileName);
            lock (state)
            {
                if (files.ContainsKey(s.FileID)) { Warn("FileStart for FileID " + s.FileID + " already in use: ignored"); return; }
                var f = new IncomingFile { From = from, FileId = s.FileID, Name = name };
                files.Add(s.FileID, f);
                // Windows senders cannot put a separator in a name (Path.GetFileName); refuse one here.
                if (name.Length == 0 || name.IndexOf('/') >= 0 || name == "." || name == "..")
                { f.Failure = "bad-name"; return; }
                try
                {
                    Directory.CreateDirectory(downloadDir);
                    f.TmpPath = Path.Combine(downloadDir, string.Format("{0}{1}.TMP", s.FileID, name));
                    f.Stream = new FileStream(f.TmpPath, FileMode.Create, FileAccess.Write);
                    int first = (int)Math.Min(s.File_Size, (uint)s.FilePart1.Length);
                    f.Stream.Write(s.FilePart1, 0, first);
                }
                catch (Exception ex) { f.Failure = "temp-file: " + ex.Message; }
            }
        }

        // §8.3 FileChunk: Chunk_Size bytes of FilePartChunk; unknown FileIDs are ignored.
        void OnFileChunk(byte[] p)
        {
            var c = Wire.FromBytes<PACKET_FILECHUNK>(p);
            lock (state)
            {
                IncomingFile f;
                if (!files.TryGetValue(c.FileID, out f)) return;
                f.IdleTicks = 0;
                if (f.Failure != null || f.Abandoned || f.Stream == null) return;
                if (c.Chunk_Size > c.FilePartChunk.Length) { f.Failure = "chunk-size " + c.Chunk_Size; return; }
                try { f.Stream.Write(c.FilePartChunk, 0, c.Chunk_Size); }
                catch (Exception ex) { f.Failure = "write: " + ex.Message; }
            }
        }

        // §8.3 FileEnd: rename the temp file (deleting an existing file), set the dates parsed with
        // Convert.ToDateTime, then DoneRecievingFile. A failure anywhere skips the acknowledgement.
        void OnFileEnd(int from, byte[] p)
        {
            var s = Wire.FromBytes<PACKET_FILESTART>(p);
            IncomingFile f;
            string finalPath;
            lock (state)
            {
                if (!files.TryGetValue(s.FileID, out f)) { Emit("file-unacked " + from + " \\e unknown-file-id " + s.FileID); return; }
                if (f.Abandoned) { Emit("file-unacked " + from + " " + Esc.Field(f.Name) + " abandoned"); return; }
                if (f.Failure != null) { files.Remove(s.FileID); Emit("file-unacked " + from + " " + Esc.Field(f.Name) + " " + Esc.Text(f.Failure)); return; }
                try
                {
                    f.Stream.Dispose();
                    f.Stream = null;
                    finalPath = MoveIntoPlace(f.TmpPath, Path.Combine(downloadDir, f.Name));
                    files.Remove(s.FileID);
                }
                catch (Exception ex) { Emit("file-unacked " + from + " " + Esc.Field(f.Name) + " " + Esc.Text("rename: " + ex.Message)); return; }
            }
            string dates = Wire.Str(s.szFileName);
            try
            {
                string[] parts = dates.Split('|');
                File.SetCreationTime(finalPath, Convert.ToDateTime(parts[0], EnUs));
                File.SetLastWriteTime(finalPath, Convert.ToDateTime(parts[1], EnUs));
            }
            catch (Exception ex)
            {
                Emit("file-unacked " + from + " " + Esc.Field(f.Name) + " " + Esc.Text("dates '" + dates + "': " + ex.Message));
                return;
            }
            // DoneRecievingFile: idTo = the sender from bytes 4-5 of the FileEnd, A = file name (<= 299).
            var x = new PACKET_DATA
            {
                Packet_Type = (ushort)PACKETTYPES.TYPE_DoneRecievingFile,
                idFrom = (uint)Volatile.Read(ref myId),
                idTo = (uint)from
            };
            f.Name.CopyTo(0, x.szStringDataA, 0, Math.Min(f.Name.Length, x.szStringDataA.Length - 1));
            Send(Wire.ToBytes(x));
            Emit("file-received " + from + " " + Esc.Field(f.Name) + " " + new FileInfo(finalPath).Length);
        }

        // The original deletes an existing file; only when that fails does it pick "name(1).ext" and on.
        static string MoveIntoPlace(string tmp, string final)
        {
            bool needNewName = false;
            try { if (File.Exists(final)) File.Delete(final); }
            catch (Exception) { needNewName = true; }
            if (needNewName)
            {
                string dir = Path.GetDirectoryName(final), stem = Path.GetFileNameWithoutExtension(final);
                string ext = Path.GetExtension(final);
                for (int c = 1; File.Exists(final); c++) final = Path.Combine(dir, stem + "(" + c + ")" + ext);
            }
            File.Move(tmp, final);
            return final;
        }

        // ---- Timers ----------------------------------------------------------------------------------

        // §9: no complete packet for more than 5 minutes: the server is lost; then as HostExiting.
        void GeneralTimerTick()
        {
            double idle;
            lock (state) idle = sinceLastPacket.Elapsed.TotalMinutes;
            if (idle <= 5 || finishing != 0) return;
            Emit("server-silent");
            Thread.Sleep(1000);
            Disconnect(1, "silent", 2);
        }

        // §8.3: a body without a packet for 6 ticks of 10 s is abandoned; it stays in the table.
        void FileTimerTick()
        {
            lock (state)
                foreach (IncomingFile f in files.Values)
                {
                    if (f.Abandoned || ++f.IdleTicks < 6) continue;
                    f.Abandoned = true;
                    if (f.Stream != null) { f.Stream.Dispose(); f.Stream = null; }
                    Emit("file-abandoned " + f.From + " " + Esc.Field(f.Name));
                }
        }

        // ---- Commands --------------------------------------------------------------------------------

        sealed class UsageError : Exception { public UsageError(string usage) : base("usage: " + usage) { } }

        // Argument i of a command as a number (negative only when allowed).
        static int Int(string[] w, int i, string usage, bool negative = false)
        {
            int v;
            if (i >= w.Length || !int.TryParse(w[i].Trim(), NumberStyles.Integer, Inv, out v) || (v < 0 && !negative))
                throw new UsageError(usage);
            return v;
        }

        void Execute(string line)
        {
            string[] w = line.Split(new[] { ' ' }, 3);      // the last field keeps its spaces
            try
            {
                switch (w[0])
                {
                    case "":
                        return;
                    case "msg":
                        SendText(Int(w, 1, "msg ID TEXT"), w.Length > 2 ? Esc.Decode(w[2]) : "");
                        return;
                    case "msgrep":
                        {
                            string[] a = line.Split(new[] { ' ' }, 4);
                            const string usage = "msgrep ID COUNT CHAR";
                            int id = Int(a, 1, usage), count = Int(a, 2, usage);
                            if (a.Length < 4) throw new UsageError(usage);
                            var sb = new StringBuilder();
                            for (int i = 0; i < count; i++) sb.Append(Esc.Decode(a[3]));
                            SendText(id, sb.ToString());
                            return;
                        }
                    case "bulk":
                        RunBulk(Int(w, 1, "bulk ID COUNT"), Int(w, 2, "bulk ID COUNT"));
                        return;
                    case "file":
                        {
                            int id = Int(w, 1, "file ID PATH");
                            if (w.Length < 3 || id > ushort.MaxValue) throw new UsageError("file ID PATH");
                            SendFile(id, Esc.Decode(w[2]));
                            return;
                        }
                    case "roster":
                        lock (state)
                        {
                            var ids = new List<int>(roster.Keys);
                            ids.Sort();
                            foreach (int i in ids) Emit("roster-entry " + Describe(roster[i]));
                        }
                        Emit("roster-end");
                        return;
                    case "nums":
                        {
                            string[] a = line.Split(' ');
                            int n1 = Int(a, 1, "nums N1 N2", true), n2 = Int(a, 2, "nums N1 N2", true);
                            num1 = n1; num2 = n2;
                            return;
                        }
                    case "sleep":
                        Thread.Sleep(Int(w, 1, "sleep MS"));
                        return;
                    case "close":
                        // The Disconnect button: TellServerImDisconnecting, then DoServerDisconnect, which sends
                        // Close again, sleeps 75 ms and closes: two Closes (§10).
                        Disconnect(2, "closed", 0);
                        return;
                    default:
                        Error("unknown command: " + w[0]);
                        return;
                }
            }
            catch (UsageError e) { Error(e.Message); }
        }

        // The "send to clients" button refuses an empty or blank text; "send data to server" does not (§6).
        void SendText(int to, string text)
        {
            if (to != 0 && string.IsNullOrWhiteSpace(text)) { Error("msg: nothing to send (empty text to a peer)"); return; }
            int packets = SendMessageOut(to, text);
            Emit("msg-sent " + to + " " + text.Length + " " + packets);
        }

        void RunBulk(int to, int count)
        {
            var b = new Bulk { Target = to, Count = count, Clock = Stopwatch.StartNew() };
            lock (bulkLock) { bulk = b; if (count == 0) { b.AckedDone = true; b.AckSeconds = 0; } }
            for (int i = 1; i <= count; i++) SendMessageOut(to, "line " + i.ToString(Inv));
            double sent = b.Clock.Elapsed.TotalSeconds;
            lock (bulkLock)
            {
                Emit("bulk-sent " + count + " " + Seconds(sent));
                b.SentPrinted = true;
                if (b.AckedDone) Emit("bulk-acked " + count + " " + Seconds(b.AckSeconds));
            }
        }

        static string Seconds(double s) => s.ToString("0.000000", CultureInfo.InvariantCulture);
    }
}
