//! `playlists-actors`: the control plane and HTTP front end of the playlists LL-HLS server.
