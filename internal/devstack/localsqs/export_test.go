package localsqs

// Looks is how many times the server's consumers looked for a batch.
func Looks(s *Server) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.looks
}
